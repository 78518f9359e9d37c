"""The Go-compatibility codec: Go's text forms that Ollama puts on the wire, from here only.

Ollama is written in Go, and clients compare what it writes: ``%q`` in errors (``name "X" is
invalid``), ``%v``/``%#v`` in ``/api/show``'s ``parameters`` and the CLI, ``%T`` in type errors
(``Unsupported type: '[]interface {}'``), ``encoding/json``'s numbers, and its decoder's wording
(``json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string``).
Wording drift is a client-visible bug, so each of those forms has exactly one function here.

Named *codec* (not ``gofmt``, which is Go's source formatter) because it works both ways: it
encodes values as Go prints them and decodes JSON fields as Go's decoder binds them, refusals
included. It lives in ``services`` because the gateway and the registry both speak it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from services.errors import InvalidRequestError

PARAMETER_NAME_WIDTH = 30

# -- strings: strconv.Quote and encoding/json's quoteChar ----------------------------------------

_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                   "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """``strconv.Quote`` (Go's ``%q``): double quotes, Go escapes, printable runes kept.

    Not ``json.dumps``: Go writes ``\\x01`` and ``\\x7f`` where JSON writes ``\\u0001`` and a raw
    DEL, and Go escapes non-printable runes (``\\u200b``) that JSON keeps."""
    return '"' + "".join(_quoted_rune(char) for char in text) + '"'


def _quoted_rune(char: str) -> str:
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char]
    if char == " " or char.isprintable():
        return char
    if ord(char) < 0x80:
        return f"\\x{ord(char):02x}"
    return f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}"


def go_quote_char(char: str) -> str:
    """``encoding/json``'s ``quoteChar`` for the byte its syntax errors name
    (``invalid character 'x' ...``): single quotes, ``'\\''`` for a quote, and for a non-ASCII
    character its first UTF-8 byte read as a rune, as Go reports it (``'Ã'`` for ``é``)."""
    byte = chr(char.encode("utf-8", "surrogatepass")[0])
    if byte == "'":
        return "'\\''"
    if byte == '"':
        return "'\"'"
    return "'" + go_quote(byte)[1:-1] + "'"


# -- JSON kinds and Go type names ----------------------------------------------------------------

_JSON_KINDS = ((bool, "bool"), (str, "string"), ((int, float), "number"), (list, "array"),
               (dict, "object"))
_GO_TYPES = ((bool, "bool"), (str, "string"), ((int, float), "float64"),
             (list, "[]interface {}"), (dict, "map[string]interface {}"))


def json_kind(value: object) -> str:
    """What Go's ``UnmarshalTypeError`` calls a decoded JSON value: ``string``, ``number``,
    ``bool``, ``array``, ``object``, ``null`` (``value`` for anything that is not JSON)."""
    if value is None:
        return "null"
    return next((name for types, name in _JSON_KINDS if isinstance(value, types)), "value")


def go_type_name(value: object) -> str:
    """Go's ``%T`` of a JSON value decoded into ``any``: ``float64``, ``[]interface {}``..."""
    if value is None:
        return "<nil>"
    return next((name for types, name in _GO_TYPES if isinstance(value, types)),
                type(value).__name__)


# -- encoding/json: whole documents ------------------------------------------------------------

_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                               "\u2028": "\\u2028", "\u2029": "\\u2029"})


def encode_json(value: object, *, sort_keys: bool = False, newline: bool = False) -> bytes:
    """``value`` as Go's ``encoding/json`` writes it: compact, UTF-8 kept, ``<>&`` and
    U+2028/9 escaped; ``newline`` adds the trailing ``\\n`` of a ``json.Encoder``. Manifest and
    config digests depend on these bytes, and clients compare replies to Ollama's."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    # <, >, & and U+2028/9 can only occur inside strings, so a plain translate is safe.
    text = text.translate(_HTML_ESCAPES) + ("\n" if newline else "")
    return text.encode("utf-8", "replace")


def json_string(text: str) -> str:
    """One string as ``encoding/json`` writes it: ``<>&`` and U+2028/9 escaped, and (since Go
    1.22, like Python) ``\\b`` and ``\\f`` rather than ``\\u0008`` and ``\\u000c``."""
    return json.dumps(text, ensure_ascii=False).translate(_HTML_ESCAPES)


# -- decoding: Go's unmarshal errors and typed fields --------------------------------------------

def unmarshal_error_text(value: object, where: str | None, go_type: str, *,
                         literal: bool = False) -> str:
    """``json: cannot unmarshal <kind> into Go struct field <where> of type <go_type>``, or
    ``... into Go value of type <go_type>`` when ``where`` is ``None`` (the top-level value).

    ``literal`` names a number that has the right kind but does not fit (``number 1.5``, or
    ``number 4294967296`` for an ``int32``), as Go does; ``value`` is then the number or the
    text of its literal."""
    found = f"number {value}" if literal else json_kind(value)
    into = f"Go struct field {where}" if where is not None else "Go value"
    return f"json: cannot unmarshal {found} into {into} of type {go_type}"


def unmarshal_error(value: object, where: str | None, go_type: str, *,
                    literal: bool = False) -> InvalidRequestError:
    """``unmarshal_error_text`` as the 400 the request gets."""
    return InvalidRequestError(unmarshal_error_text(value, where, go_type, literal=literal))


# what a field of each JSON kind is declared as when the caller names no Go type
_DEFAULT_GO_TYPES = {"string": "string", "bool": "bool", "int": "int", "number": "float64",
                     "object": "map[string]interface {}", "array": "[]interface {}"}


def typed_field(body: Mapping[str, Any], struct: str, name: str, kind: str,
                go_type: str | None = None, default: Any = None) -> Any:
    """``body[name]`` when it has JSON kind ``kind`` (a ``json_kind`` name, or ``int`` for a
    whole number); absent or ``null`` gives ``default``. Otherwise Go's decoder error for field
    ``<struct>.<name>`` of type ``go_type`` (by default the plain Go type of ``kind``); a
    number that is not whole is named by its literal, as Go names a number that does not fit."""
    value = body.get(name)
    if value is None:
        return default
    found = json_kind(value)
    if kind == "int":
        if found == "number" and isinstance(value, int):
            return value
    elif found == kind:
        return value
    literal = kind == "int" and found == "number"
    raise unmarshal_error(value, f"{struct}.{name}", go_type or _DEFAULT_GO_TYPES[kind],
                          literal=literal)


# -- numbers: fmt's %v and encoding/json ---------------------------------------------------------

def format_float(x: float) -> str:
    """Go's ``%v`` of a float64 (shortest ``%g``): exponent form when the decimal exponent is
    below -4 or from 6 on (``1.048576e+06``), ``NaN``/``+Inf``/``-Inf`` named."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    neg, digits, point = _shortest_digits(x)
    if not -4 <= point - 1 < 6:
        return neg + _exponent_form(digits, point, negative_width=2)
    return neg + _positional_form(digits, point)


def json_float(x: float) -> str:
    """``encoding/json``'s float64: shortest digits, exponent form only below 1e-6 or from
    1e21 (``1e-7``, ``1e+21``); ``NaN`` and infinities are refused, as Go refuses them."""
    if not math.isfinite(x):
        raise ValueError(f"json: unsupported value: {format_float(x)}")
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    neg, digits, point = _shortest_digits(x)
    if abs(x) < 1e-6 or abs(x) >= 1e21:
        return neg + _exponent_form(digits, point, negative_width=1)  # Go trims e-07 to e-7
    return neg + _positional_form(digits, point)


def _shortest_digits(x: float) -> tuple[str, str, int]:
    """(sign, digits, point) of finite non-zero ``x``: ``x = ±0.<digits> × 10**point``, with
    the shortest digits that read back as ``x`` (Go's and Python's shortest agree)."""
    sign, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    return ("-" if sign else ""), digits, len(digit_tuple) + int(exponent)


def _exponent_form(digits: str, point: int, *, negative_width: int) -> str:
    exp10 = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    width = negative_width if exp10 < 0 else 2
    return f"{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):0{width}d}"


def _positional_form(digits: str, point: int) -> str:
    if point <= 0:
        return f"0.{'0' * -point}{digits}"
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return f"{digits[:point]}.{digits[point:]}"


def whole_numbers_as_ints(value: Any) -> Any:
    """``value`` with every whole float (nested in lists and dicts) as an ``int``, so that
    Python's JSON writes it as Go's ``encoding/json`` writes the float64: ``4096``, not
    ``4096.0``. Only below 1e21: from there Go writes exponent form too (``1e+21``)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() \
            and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [whole_numbers_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: whole_numbers_as_ints(v) for k, v in value.items()}
    return value


def go_json_value(value: Any) -> Any:
    """Decoded JSON as Go's ``any`` holds it: every number a float64 (tuples as lists)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): go_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [go_json_value(v) for v in value]
    return value


# -- values: %v and %#v of decoded JSON ----------------------------------------------------------

def go_value_text(value: Any) -> str:
    """Go's ``%v`` of a value decoded from JSON, where every number is a float64: whole numbers
    print bare (``4096``) but switch to exponent form from 1e6 on (``1.048576e+06``); lists
    print as ``[a b]``, objects as ``map[k:v]`` with sorted keys, null as ``<nil>``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_float(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value_text(value[k])}" for k in sorted(value)) + "]"
    return "<nil>" if value is None else str(value)


def go_sharp_v(value: Any) -> str:
    """``%#v`` of a scalar decoded from JSON: strings quoted, numbers as float64, bools bare."""
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
