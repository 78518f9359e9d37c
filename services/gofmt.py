"""Go's ``fmt`` verbs that Ollama puts on the wire: ``%q`` and ``%#v``.

Ollama formats some error messages with ``%q`` (``name "X" is invalid``) and ``/api/show``'s
``parameters`` with ``%-30s %#v``; clients compare those strings, so we print them as Go does.
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
