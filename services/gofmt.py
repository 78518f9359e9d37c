"""Go's wording that Ollama puts on the wire: ``%q``, ``%#v``, ``%T`` and JSON kind names.

Ollama formats some error messages with ``%q`` (``name "X" is invalid``) and ``/api/show``'s
``parameters`` with ``%-30s %#v``; its JSON decoder names what it found (``json: cannot unmarshal
number into Go struct field ...``) and ``%T`` names decoded values (``Unsupported type:
'[]interface {}'``). Clients compare those strings, so we print them as Go does, from here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.options_table import go_value_text

_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                   "\v": "\\v", "\\": "\\\\", '"': '\\"'}
PARAMETER_NAME_WIDTH = 30


def go_quote(text: str) -> str:
    """``strconv.Quote``: double quotes, Go escapes, printable runes kept as they are."""
    out = ['"']
    for char in text:
        if char in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[char])
        elif char == " " or char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


_JSON_KINDS = ((bool, "bool"), (str, "string"), ((int, float), "number"), (list, "array"),
               (dict, "object"))
_GO_TYPES = ((bool, "bool"), (str, "string"), ((int, float), "float64"),
             (list, "[]interface {}"), (dict, "map[string]interface {}"))


def json_kind(value: object) -> str:
    """What Go's ``UnmarshalTypeError`` calls a decoded JSON value: ``string``, ``number``..."""
    if value is None:
        return "null"
    return next((name for types, name in _JSON_KINDS if isinstance(value, types)), "value")


def go_type_name(value: object) -> str:
    """Go's ``%T`` of a JSON value decoded into ``any``: ``float64``, ``[]interface {}``..."""
    if value is None:
        return "<nil>"
    return next((name for types, name in _GO_TYPES if isinstance(value, types)),
                type(value).__name__)


def unmarshal_error_text(value: object, where: str, go_type: str, *, literal: bool = False) -> str:
    """``json: cannot unmarshal <kind> into Go struct field <where> of type <go_type>``.

    ``literal`` names a number that has the right kind but does not fit (``number 1.5``, or
    ``number 4294967296`` for an ``int32``), as Go does."""
    found = f"number {value}" if literal else json_kind(value)
    return f"json: cannot unmarshal {found} into Go struct field {where} of type {go_type}"


def go_sharp_v(value: Any) -> str:
    """``%#v`` of a value decoded from JSON: strings quoted, numbers as float64, bools bare."""
    if isinstance(value, str):
        return go_quote(value)
    return go_value_text(value)


def parameters_text(parameters: Mapping[str, Any]) -> str:
    """``/api/show``'s ``parameters``: ``%-30s %#v`` per value, list values one line each."""
    lines = []
    for name, value in parameters.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        lines += [f"{name:<{PARAMETER_NAME_WIDTH}} {go_sharp_v(item)}" for item in values]
    return "\n".join(lines)
