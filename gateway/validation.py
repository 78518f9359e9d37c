"""The request-validation layer: strict JSON, then every field's type and range.

Every JSON body the gateway accepts passes here before a handler looks at it (``decode_request``
via ``schemas.read_json``):

1. **Strict JSON**, as Go's decoder (hence Ollama) reads it: no ``NaN``/``Infinity``, no number
   beyond float64 (``1e999``), UTF-8 only; beyond Go, no lone UTF-16 surrogate (``"\\ud800"``,
   which Go silently turns into U+FFFD and which would break every later step) and at most
   ``MAX_DEPTH`` levels of nesting (Go allows 10000; nothing in the API nests a tenth of ours).
2. **The request's struct** (``gateway.request_specs``): each known field's JSON type, element
   types, integer width (the C field it reaches), float32 range and list length, with Go's
   wording: ``json: cannot unmarshal string into Go struct field GenerateRequest.prompt of type
   string``. ``null`` for a field means absent, as in Go; ``null`` *inside* a list is refused
   (Go would silently use a zero value). Unknown fields are ignored, as Ollama does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.limits import too_many
from services.errors import InvalidRequestError
from services.gocodec import go_quote_char, unmarshal_error, unmarshal_error_text
from services.options_table import fits_float32

MAX_DEPTH = 100
DEPTH_ERROR = "exceeded max depth: JSON may nest at most 100 levels"
_CONSTANTS = {"NaN": "invalid character 'N' looking for beginning of value",
              "Infinity": "invalid character 'I' looking for beginning of value",
              "-Infinity": "invalid character 'I' in numeric literal"}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(Exception):  # noqa: N818 - a signal out of the decoder's hooks
    """Raised from inside the decoder's hooks; carries the client's message."""


def _reject_constant(name: str) -> Any:
    raise _Refused(_CONSTANTS.get(name, f"invalid character {go_quote_char(name)} in literal"))


def _strict_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(unmarshal_error_text(text, None, "float64", literal=True))
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_strict_float)


def decode_error(exc: json.JSONDecodeError) -> str:
    """Go's decoder message for the place Python's decoder stopped."""
    if exc.pos >= len(exc.doc.rstrip()):
        return "unexpected EOF"
    char = exc.doc[exc.pos]
    where = {
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Extra data": "after top-level value",
    }.get(exc.msg)
    if exc.msg == "Expecting ',' delimiter":
        where = "after array element" if _innermost_open(exc.doc, exc.pos) == "[" else \
            "after object key:value pair"
    return f"invalid character {go_quote_char(char)} {where or 'looking for beginning of value'}"


def _innermost_open(doc: str, pos: int) -> str:
    depth: list[str] = []
    in_string = escaped = False
    for char in doc[:pos]:
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth.append(char)
        elif char in "]}" and depth:
            depth.pop()
    return depth[-1] if depth else ""


def decode_strict(raw: bytes) -> Any:
    """``raw`` as JSON, read as strictly as described above (``InvalidRequestError`` else)."""
    if not raw.strip():
        raise InvalidRequestError("missing request body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"invalid UTF-8 in request body at byte {exc.start}") from None
    try:
        value = _DECODER.decode(text)
    except _Refused as exc:
        raise InvalidRequestError(str(exc)) from None
    except RecursionError:
        raise InvalidRequestError(DEPTH_ERROR) from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(decode_error(exc)) from None
    except ValueError:  # an integer literal of thousands of digits
        raise InvalidRequestError("json: number out of range") from None
    _check_tree(value, strings=_SURROGATE_ESCAPE.search(text) is not None)
    return value


def _check_tree(value: Any, *, strings: bool) -> None:
    """Nesting depth (iteratively: no recursion limit to hit) and, when the text has surrogate
    escapes at all, that every string is valid Unicode."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequestError(DEPTH_ERROR)
        items = node.items() if isinstance(node, dict) else ((None, v) for v in node)
        for key, item in items:
            if strings:
                _check_string(key)
                _check_string(item)
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
    if strings:
        _check_string(value)


def _check_string(value: Any) -> None:
    if isinstance(value, str) and (found := _SURROGATE.search(value)):
        raise InvalidRequestError(
            f"invalid string: \\u{ord(found.group()):04x} is a lone UTF-16 surrogate, not a "
            "character")


# -- field specs --------------------------------------------------------------------------------

class Spec:
    """What one JSON value must be; ``check`` raises ``InvalidRequestError`` in Go's words."""

    go: str = "interface {}"

    def check(self, value: Any, where: str) -> None:
        raise NotImplementedError

    def refuse(self, value: Any, where: str, *, literal: bool = False) -> InvalidRequestError:
        return unmarshal_error(value, where, self.go, literal=literal)


@dataclass(frozen=True)
class Kind(Spec):
    """A JSON string, bool, object (any content) or anything (``Kind(object)``)."""

    types: type | tuple[type, ...]
    go: str

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, self.types):
            raise self.refuse(value, where)


STRING = Kind(str, "string")
BOOL = Kind(bool, "bool")
ANY = Kind(object, "interface {}")


def obj(go: str = "map[string]interface {}") -> Kind:
    return Kind(dict, go)


@dataclass(frozen=True)
class Integer(Spec):
    """A JSON integer literal (``1.5`` and ``1e3`` are not, as in Go) within ``[low, high]``:
    ``go`` is the type Ollama declares, ``c_type`` the narrower field the value reaches (named
    when the value does not fit it)."""

    go: str = "int"
    low: int = -(2**63)
    high: int = 2**63 - 1
    c_type: str = ""

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(value, where)
        if isinstance(value, float):
            raise self.refuse(value, where, literal=True)
        if not self.low <= value <= self.high:
            raise unmarshal_error(value, where, self.c_type or self.go, literal=True)


INT32 = Integer("int", -(2**31), 2**31 - 1, "int32")


@dataclass(frozen=True)
class Float(Spec):
    """A JSON number that a C ``float`` holds (every sampling knob ends up as one); ``go`` is
    the type Ollama declares, named when the value is not a number at all."""

    go: str = "float32"

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(value, where)
        if not fits_float32(float(value)):
            raise unmarshal_error(value, where, "float32", literal=True)


FLOAT32 = Float()
FLOAT64 = Float("float64")


@dataclass(frozen=True)
class Array(Spec):
    """A JSON array of ``item``; ``null`` items are refused; at most ``limit`` items."""

    item: Spec
    go: str
    limit: int = 0
    noun: str = "items"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise self.refuse(value, where)
        if self.limit and len(value) > self.limit:
            raise InvalidRequestError(too_many(self.noun, len(value), self.limit))
        for item in value:
            if item is None:
                raise self.item.refuse(None, where)
            self.item.check(item, where)


@dataclass(frozen=True)
class StringMap(Spec):
    """A JSON object whose values are all strings (``map[string]string``)."""

    go: str = "map[string]string"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise self.refuse(value, where)
        for item in value.values():
            STRING.check(item, where)


@dataclass(frozen=True)
class Custom(Spec):
    """A field with its own decoder (``think``, ``format``, ``keep_alive``, ``options``...):
    the decoder raises ``InvalidRequestError`` in the wording Ollama uses for that field.
    With ``types``, a value of another JSON type is refused first, naming ``go``."""

    decode: Callable[[Any], Any]
    types: type | tuple[type, ...] | None = None
    go: str = "interface {}"

    def check(self, value: Any, where: str) -> None:
        if self.types is not None and not isinstance(value, self.types):
            raise self.refuse(value, where)
        self.decode(value)


@dataclass(frozen=True)
class Struct(Spec):
    """A JSON object with known fields (unknown ones are ignored, ``null`` means absent)."""

    go: str
    fields: Mapping[str, Spec] = field(default_factory=dict)

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise self.refuse(value, where)
        self.check_fields(value, where)

    def check_fields(self, value: dict[str, Any], where: str) -> None:
        for name, spec in self.fields.items():
            item = value.get(name)
            if item is not None:
                spec.check(item, f"{where}.{name}")


def check_body(body: Any, struct: Struct, package: str) -> dict[str, Any]:
    """``body`` checked against the top-level ``struct`` (Go's ``api.GenerateRequest`` etc.)."""
    name = struct.go.rpartition(".")[2]
    if body is None:  # Go decodes `null` into a struct as no fields at all (then {}'s reply)
        return {}
    if not isinstance(body, dict):
        raise unmarshal_error(body, None, f"{package}.{name}")
    struct.check_fields(body, name)
    return body
