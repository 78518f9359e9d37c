"""Go values as templates see them: structs, stringer maps/slices, printing and JSON marshalling.

Plain Python data maps onto Go's ``any`` values: ``dict`` is a map (ranged and marshalled in
sorted key order), ``list`` a slice, ``None`` nil, ``float`` float64, ``int`` int. Go types with
behaviour the templates rely on get small wrappers:

* ``GoStruct`` — a struct: fixed fields (unknown ones are an execution error), printed as
  ``{v1 v2}`` unless it has a ``String()`` (then JSON), marshalled with its JSON field names;
* ``GoMap`` / ``GoSlice`` — a map/slice type whose ``String()`` returns its JSON;
* ``PropertyType`` — Ollama's ``[]string`` that prints and marshals as a bare string when single.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.gocodec import format_float, go_type_name, json_float, json_string

NO_VALUE = "<no value>"


class GoStruct:
    """A Go struct value. ``json_fields``: (json name, field, omitempty) in declaration order."""

    __slots__ = ("type_name", "fields", "json_fields", "stringer")

    def __init__(self, type_name: str, fields: dict[str, Any], *,
                 json_fields: Sequence[tuple[str, str, bool]] | None = None,
                 stringer: bool = False) -> None:
        self.type_name = type_name
        self.fields = fields
        self.json_fields = json_fields
        self.stringer = stringer

    def __repr__(self) -> str:
        return f"GoStruct({self.type_name}, {self.fields!r})"

    def to_json(self) -> Any:
        """The JSON-shaped value ``encoding/json`` would produce (key order kept)."""
        spec = self.json_fields or [(name, name, False) for name in self.fields]
        return JsonObject((key, self.fields[name]) for key, name, omit in spec
                          if not (omit and is_empty(self.fields[name])))


class GoMap(dict[Any, Any]):
    """A map type with a JSON ``String()`` (Ollama's ``templateArgs``/``templateProperties``)."""

    ordered = False  # marshal in insertion order instead of sorted (Ollama's ordered maps)


class GoSlice(list[Any]):
    """A slice type with a JSON ``String()`` (Ollama's ``templateTools``)."""


class PropertyType(list[str]):
    """``api.PropertyType``: a list of JSON-schema type names."""


class JsonObject(dict[str, Any]):
    """A JSON object whose key order is fixed (struct fields), not sorted."""


def is_empty(value: Any) -> bool:
    """Go's ``omitempty`` test (and the template's falsiness, structs aside)."""
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) == 0
    return False


def truth(value: Any) -> bool:
    """Go template truthiness: false, 0, nil, empty string/slice/map are false; structs true."""
    if isinstance(value, GoStruct):
        return True
    return not is_empty(value)


def type_name(value: Any) -> str:
    """Go's ``%T`` of a template value: a struct's own name, ``int`` for an integer (template
    literals and Ollama's structs have ints, where JSON decoded into ``any`` has only float64)."""
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, int) and not isinstance(value, bool):
        return "int"
    return go_type_name(value)


def map_key_order(key: Any) -> tuple[int, Any, str]:
    """Go's order for map keys when ranging or printing: numbers, then strings."""
    return (0, key, "") if isinstance(key, (int, float)) else (1, 0, str(key))


# -- printing (fmt's %v) -----------------------------------------------------------------------

def sprint_value(value: Any, *, top: bool = True) -> str:
    """``fmt.Sprint(value)``: what ``{{ value }}`` writes (``<no value>`` for a top-level nil)."""
    if value is None:
        return NO_VALUE if top else "<nil>"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, PropertyType):
        return value[0] if len(value) == 1 else (
            "" if not value else "[" + " ".join(value) + "]")
    if isinstance(value, (GoMap, GoSlice)):
        return marshal(value)
    if isinstance(value, GoStruct):
        if value.stringer:
            return marshal(value)
        return "{" + " ".join(sprint_value(v, top=False) for v in value.fields.values()) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: map_key_order(kv[0]))
        return "map[" + " ".join(f"{sprint_value(k, top=False)}:{sprint_value(v, top=False)}"
                                 for k, v in items) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(sprint_value(v, top=False) for v in value) + "]"
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


# -- JSON (encoding/json's Marshal) ------------------------------------------------------------

def marshal(value: Any) -> str:
    """``json.Marshal(value)``: compact, HTML-escaped, map keys sorted, Go float format."""
    parts: list[str] = []
    _marshal(value, parts)
    return "".join(parts)


def _marshal(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(json_float(value))
    elif isinstance(value, str):
        out.append(json_string(value))
    elif isinstance(value, PropertyType):
        _marshal(value[0] if len(value) == 1 else list(value), out)
    elif isinstance(value, GoStruct):
        _marshal(value.to_json(), out)
    elif isinstance(value, dict):
        ordered = isinstance(value, JsonObject) or getattr(value, "ordered", False)
        items = value.items() if ordered else sorted(value.items(), key=lambda kv: str(kv[0]))
        out.append("{")
        for i, (key, item) in enumerate(items):
            out.append("," if i else "")
            out.append(json_string(str(key)) + ":")
            _marshal(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _marshal(item, out)
        out.append("]")
    else:
        out.append(json_string(str(value)))
