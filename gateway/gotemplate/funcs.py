"""Template functions: Go's builtins plus the ones Ollama adds (``json``, dates, TypeScript types).

Every function takes already evaluated arguments; ``and``/``or`` short-circuit in the executor.
Failures raise ``FuncError`` and the executor adds the ``error calling X:`` context as Go does.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from gateway.gotemplate.values import (GoStruct, PropertyType, marshal, sprint_value, truth,
                                       type_name)
from services.gocodec import go_quote, json_kind


class FuncError(Exception):
    """A function rejected its arguments."""


# -- comparison --------------------------------------------------------------------------------

_BASIC_KINDS = frozenset({"bool", "number", "string", "null"})  # what ``eq`` can compare


def _comparable(a: Any, b: Any) -> None:
    ka, kb = json_kind(a), json_kind(b)
    if not {ka, kb} <= _BASIC_KINDS:
        raise FuncError("non-comparable type")
    if ka != kb and "null" not in (ka, kb):
        raise FuncError("incompatible types for comparison")


def eq(first: Any, *others: Any) -> bool:
    """``eq a b c``: a == b or a == c (basic kinds only, like Go)."""
    if not others:
        raise FuncError("missing argument for comparison")
    for other in others:
        _comparable(first, other)
        if first == other:
            return True
    return False


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


def _ordered(a: Any, b: Any) -> None:
    _comparable(a, b)
    if json_kind(a) not in ("number", "string") or json_kind(b) != json_kind(a):
        raise FuncError("invalid type for comparison")


def lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a < b)


def le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a <= b)


def gt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a > b)


def ge(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a >= b)


def not_(value: Any) -> bool:
    return not truth(value)


# -- collections -------------------------------------------------------------------------------

def length(value: Any) -> int:
    """``len``: bytes of a string, items of a slice or map."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (list, tuple, dict, bytes)):
        return len(value)
    raise FuncError(f"len of type {type_name(value)}")


def index(item: Any, *keys: Any) -> Any:
    """``index x 1 2``: x[1][2]; a missing map key gives nil."""
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key)
        elif isinstance(item, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise FuncError(f"cannot index slice/array with type {type_name(key)}")
            seq = item.encode("utf-8") if isinstance(item, str) else item
            if not 0 <= key < len(seq):
                raise FuncError(f"index out of range: {key}")
            item = seq[key]
        elif item is None:
            raise FuncError("index of untyped nil")
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def slice_(item: Any, *bounds: Any) -> Any:
    """``slice x 1 2``: x[1:2] (strings by bytes)."""
    if len(bounds) > 3:
        raise FuncError(f"too many slice indexes: {len(bounds)}")
    data: bytes | list[Any] | tuple[Any, ...]
    if isinstance(item, str):
        if len(bounds) == 3:
            raise FuncError("cannot 3-index slice a string")
        data = item.encode("utf-8")
    elif isinstance(item, (list, tuple)):
        data = item
    elif item is None:
        raise FuncError("slice of untyped nil")
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    for b in bounds:
        if isinstance(b, bool) or not isinstance(b, int):
            raise FuncError(f"cannot index slice/array with type {type_name(b)}")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(data)
    if not 0 <= start <= end <= len(data):
        raise FuncError(f"index out of range: {end if end > len(data) else start}")
    part = data[start:end]
    return part.decode("utf-8", "replace") if isinstance(part, bytes) else list(part)


# -- printing ----------------------------------------------------------------------------------

def sprint(*args: Any) -> str:
    """``fmt.Sprint``: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(sprint_value(arg, top=False))
    return "".join(out)


def sprintln(*args: Any) -> str:
    return " ".join(sprint_value(a, top=False) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def sprintf(fmt: Any, *args: Any) -> str:
    """``fmt.Sprintf`` for the common verbs (v s d q t f e g x X c %) with width/precision."""
    if not isinstance(fmt, str):
        raise FuncError(f"wrong type for value; expected string; got {type_name(fmt)}")
    out, pos, used = [], 0, 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[pos:match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        out.append(_pad(_format(verb, arg, precision), flags, width))
    out.append(fmt[pos:])
    if used < len(args):
        extra = ", ".join(f"{type_name(a)}={sprint_value(a, top=False)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format(verb: str, arg: Any, precision: str | None) -> str:
    prec = int(precision) if precision and precision.isdigit() else None
    if verb in "vs":
        text = sprint_value(arg, top=False)
        return text[:prec] if prec is not None and verb == "s" else text
    if verb == "q":
        return go_quote(arg) if isinstance(arg, str) else f"'{chr(arg)}'" if isinstance(
            arg, int) and not isinstance(arg, bool) else sprint_value(arg, top=False)
    if verb == "t" and isinstance(arg, bool):
        return "true" if arg else "false"
    if verb in "dxXc" and isinstance(arg, int) and not isinstance(arg, bool):
        return {"d": str(arg), "x": format(arg, "x"), "X": format(arg, "X"), "c": chr(arg)}[verb]
    if verb in "xX" and isinstance(arg, str):
        return arg.encode("utf-8").hex().upper() if verb == "X" else arg.encode("utf-8").hex()
    if verb in "feEgG" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
        if verb in "gG" and prec is None:
            return sprint_value(float(arg), top=False)
        return format(float(arg), f".{6 if prec is None else prec}{verb}")
    return f"%!{verb}({type_name(arg)}={sprint_value(arg, top=False)})"


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width or not width.isdigit():
        return text
    size = int(width)
    if "-" in flags:
        return text.ljust(size)
    if "0" in flags and text.lstrip("-").replace(".", "").isdigit():
        sign = "-" if text.startswith("-") else ""
        return sign + text.lstrip("-").rjust(size - len(sign), "0")
    return text.rjust(size)


def html_escape(*args: Any) -> str:
    text = sprint(*args)
    return html.escape(text, quote=True).replace("&#x27;", "&#39;").replace(
        "&quot;", "&#34;").replace("\x00", "\ufffd")


def urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(sprint(*args))


# -- Ollama's additions ------------------------------------------------------------------------

def json_(value: Any) -> str:
    """Ollama's ``json``: ``json.Marshal`` as a string (errors give an empty string)."""
    try:
        return marshal(value)
    except ValueError:
        return ""


def current_date(*_format: Any) -> str:
    return dt.date.today().isoformat()


def yesterday_date(*_format: Any) -> str:
    return (dt.date.today() - dt.timedelta(days=1)).isoformat()


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}


def to_typescript_type(value: Any) -> str:
    """``toTypeScriptType``: a tool property's JSON-schema type as TypeScript."""
    if not isinstance(value, GoStruct) or "Type" not in value.fields:
        return "any"
    any_of = value.fields.get("AnyOf") or []
    if any_of:
        return " | ".join(to_typescript_type(item) for item in any_of)
    types = value.fields["Type"] or PropertyType()
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge, "not": not_,
    "len": length, "index": index, "slice": slice_,
    "print": sprint, "printf": sprintf, "println": sprintln,
    "html": html_escape, "urlquery": urlquery,
    "json": json_, "currentDate": current_date, "yesterdayDate": yesterday_date,
    "toTypeScriptType": to_typescript_type,
}
LAZY = frozenset({"and", "or"})
NAMES = frozenset(FUNCTIONS) | LAZY
