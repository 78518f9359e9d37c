"""API JSON (messages, tools) as the Go values Ollama hands its templates.

Ollama converts ``api.Message``/``api.Tool`` into template types whose printing matters to
templates: tool-call arguments and tool property maps print as JSON, ``.Tools`` prints as JSON,
``PropertyType`` prints as a bare type name. JSON numbers become float64 as in Go, so ``1``
prints ``1`` and ``1000000`` prints ``1e+06`` exactly as Ollama's templates would show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.gotemplate.values import GoMap, GoSlice, GoStruct, PropertyType
from services.gocodec import go_json_value

_TOOL_JSON = (("type", "Type", False), ("items", "Items", True), ("function", "Function", False))
_FUNCTION_JSON = (("name", "Name", False), ("description", "Description", False),
                  ("parameters", "Parameters", False))
_PARAMETERS_JSON = (("type", "Type", False), ("$defs", "Defs", True), ("items", "Items", True),
                    ("required", "Required", True), ("properties", "Properties", False))
_PROPERTY_JSON = tuple((key, name, True) for key, name in (
    ("anyOf", "AnyOf"), ("type", "Type"), ("items", "Items"), ("description", "Description"),
    ("enum", "Enum"), ("properties", "Properties"), ("required", "Required")))


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def template_messages(messages: Sequence[dict[str, Any]]) -> list[GoStruct]:
    """``[]*templateMessage`` for the messages form."""
    return [template_message(m) for m in messages]


def template_message(message: dict[str, Any]) -> GoStruct:
    calls = [template_tool_call(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    return GoStruct("*template.templateMessage", {
        "Role": message.get("role", ""), "Content": message.get("content", ""),
        "Thinking": message.get("thinking", "") or "", "Images": list(message.get("images") or []),
        "ToolCalls": calls, "ToolName": message.get("tool_name", "") or "",
        "ToolCallID": message.get("tool_call_id", "") or ""})


def template_tool_call(call: dict[str, Any]) -> GoStruct:
    function = _obj(call.get("function"))
    index = function.get("index", 0)
    arguments = GoMap(go_json_value(_obj(function.get("arguments"))))
    return GoStruct("template.templateToolCall", {
        "ID": call.get("id", "") or "",
        "Function": GoStruct("template.templateToolCallFunction", {
            "Index": int(index) if isinstance(index, (int, float)) else 0,
            "Name": function.get("name", "") or "", "Arguments": arguments})})


def template_tools(tools: Sequence[dict[str, Any]]) -> GoSlice | None:
    """``templateTools`` (nil when the request has none, so ``{{ if .Tools }}`` is false)."""
    if not tools:
        return None
    return GoSlice(template_tool(t) for t in tools)


def template_tool(tool: dict[str, Any]) -> GoStruct:
    function = _obj(tool.get("function"))
    parameters = _obj(function.get("parameters"))
    return GoStruct("template.templateTool", {
        "Type": tool.get("type", "") or "", "Items": go_json_value(tool.get("items")),
        "Function": GoStruct("template.templateToolFunction", {
            "Name": function.get("name", "") or "",
            "Description": function.get("description", "") or "",
            "Parameters": GoStruct("template.templateToolFunctionParameters", {
                "Type": parameters.get("type", "") or "",
                "Defs": go_json_value(parameters.get("$defs")),
                "Items": go_json_value(parameters.get("items")),
                "Required": _strings(parameters.get("required")),
                "Properties": _properties(parameters.get("properties"), ordered=False),
            }, json_fields=_PARAMETERS_JSON),
        }, json_fields=_FUNCTION_JSON),
    }, json_fields=_TOOL_JSON, stringer=True)


def _properties(raw: Any, *, ordered: bool) -> GoMap:
    props = GoMap({name: tool_property(value) for name, value in _obj(raw).items()})
    props.ordered = ordered
    return props


def tool_property(raw: Any) -> GoStruct:
    """``api.ToolProperty`` (no ``String()``: prints as a Go struct, marshals as JSON)."""
    prop = _obj(raw)
    kind = prop.get("type")
    types = PropertyType([kind] if isinstance(kind, str) else _strings(kind))
    nested = prop.get("properties")
    return GoStruct("api.ToolProperty", {
        "AnyOf": [tool_property(p) for p in prop.get("anyOf") or [] if isinstance(p, dict)],
        "Type": types, "Items": go_json_value(prop.get("items")),
        "Description": prop.get("description", "") or "",
        "Enum": go_json_value(prop.get("enum") or []),
        "Properties": _properties(nested, ordered=True) if isinstance(nested, dict) else None,
        "Required": _strings(prop.get("required")),
    }, json_fields=_PROPERTY_JSON)
