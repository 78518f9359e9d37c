"""Decoding the richer fields of generate/chat bodies: format, think, images, messages, tools.

Each decoder checks the JSON shape the way Go's decoder would (wording included) and returns
what the inference service works with.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.prompt import THINK_LEVELS, Message, Think
from services.errors import InvalidRequestError
from services.gocodec import go_quote, unmarshal_error
from services.json_types import JSONObject

# format "json" is Ollama's JSON-object grammar; as a schema the runner's converter makes it.
JSON_OBJECT_SCHEMA = '{"type":"object"}'
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def parse_format(value: Any) -> str:
    """The JSON Schema text that constrains output ("" for none): ``"json"`` or a schema."""
    if value is None or value == "":
        return ""
    if value == "json":
        return JSON_OBJECT_SCHEMA
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    raise InvalidRequestError(
        f'invalid format: {go_quote(raw)}; expected "json" or a valid JSON Schema object')


def parse_think(value: Any) -> Think:
    """``think``: a bool or one of the levels (``api.ThinkValue``); null means unset."""
    if value is None or isinstance(value, bool):
        return Think(value)
    if isinstance(value, str):
        if value not in THINK_LEVELS:
            raise InvalidRequestError(
                f'invalid think value: {go_quote(value)} (must be "high", "medium", "low", '
                f'"max", true, or false)')
        return Think(value)
    raise InvalidRequestError('think must be a boolean or string ("high", "medium", "low", '
                              '"max", true, or false)')


def parse_images(value: Any, where: str) -> list[str]:
    """A list of standard base64 strings (``[]api.ImageData``), each checked like Go does."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise unmarshal_error(value, where, "[]api.ImageData")
    for item in value:
        if not isinstance(item, str):
            raise unmarshal_error(item, where, "api.ImageData")
        check_base64(item)
    return list(value)


def check_base64(text: str) -> None:
    """Go's ``base64.StdEncoding`` validity, with its ``illegal base64 data`` error."""
    data = text.replace("\r", "").replace("\n", "")
    body = data.rstrip("=")
    padding = len(data) - len(body)
    for i, char in enumerate(body):
        if char not in _B64:
            raise InvalidRequestError(f"illegal base64 data at input byte {i}")
    if padding > 2 or len(data) % 4 or (padding and len(body) % 4 == 1):
        raise InvalidRequestError(f"illegal base64 data at input byte {len(body) - len(body) % 4}")


def parse_message(raw: Any) -> Message:
    """One chat message (``api.Message``); ``role`` is lower-cased as Ollama's decoder does."""
    where = "ChatRequest.messages"
    if not isinstance(raw, dict):
        raise unmarshal_error(raw, where, "api.Message")
    message = dict(raw)
    for name in ("role", "content", "thinking", "tool_name", "tool_call_id"):
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            raise unmarshal_error(value, f"{where}.{name}", "string")
    message["role"] = (raw.get("role") or "").lower()
    message["content"] = raw.get("content") or ""
    if raw.get("images") is not None:
        message["images"] = parse_images(raw["images"], f"{where}.images")
    if raw.get("tool_calls") is not None:
        message["tool_calls"] = [_tool_call(c) for c in _list(raw["tool_calls"],
                                                              f"{where}.tool_calls",
                                                              "[]api.ToolCall")]
    return message


def _tool_call(raw: Any) -> JSONObject:
    where = "ChatRequest.messages.tool_calls"
    if not isinstance(raw, dict):
        raise unmarshal_error(raw, where, "api.ToolCall")
    function = raw.get("function") or {}
    if not isinstance(function, dict):
        raise unmarshal_error(function, f"{where}.function", "api.ToolCallFunction")
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise unmarshal_error(arguments, f"{where}.function.arguments",
                              "api.ToolCallFunctionArguments")
    return {**raw, "function": {**function, "arguments": arguments or {}}}


def parse_tools(value: Any) -> list[JSONObject]:
    """``tools``: a list of ``{"type":"function","function":{name, description, parameters}}``."""
    where = "ChatRequest.tools"
    tools = _list(value, where, "api.Tools") if value is not None else []
    for tool in tools:
        if not isinstance(tool, dict):
            raise unmarshal_error(tool, where, "api.Tool")
        function = tool.get("function")
        if function is not None and not isinstance(function, dict):
            raise unmarshal_error(function, f"{where}.function", "api.ToolFunction")
        parameters = (function or {}).get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise unmarshal_error(parameters, f"{where}.function.parameters",
                                  "api.ToolFunctionParameters")
    return list(tools)


def _list(value: Any, where: str, go_type: str) -> list[Any]:
    if not isinstance(value, list):
        raise unmarshal_error(value, where, go_type)
    return value


def embed_inputs(raw: object) -> list[str]:
    """Embed ``input`` as a list: a string (``""`` means none) or a list of strings; else 400."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw] if raw else []
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise InvalidRequestError("invalid input type")
