"""An Anthropic Messages request → a native ``/api/chat`` body, as Ollama's ``anthropic``
package maps it.

``system`` (a string or text blocks) becomes a system message; each message's blocks become
one native message (text joined, ``image`` blocks as base64 ``images``, ``tool_use`` blocks as
``tool_calls``, a ``thinking`` block as ``thinking``) and each ``tool_result`` a ``tool``
message — before the user's own text, so results follow the calls they answer.
``max_tokens`` → ``num_predict``; ``stop_sequences`` → ``stop``; ``thinking`` (or
``output_config.effort``) → ``think``. Beyond Ollama: ``tool_choice`` is honoured (a forced
call is written under a grammar), and server tools are refused instead of sent to a cloud.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from gateway.formats.forced import ToolChoice
from gateway.inference_fields import check_base64
from services.errors import InvalidRequestError
from services.gocodec import typed_field, unmarshal_error
from services.json_types import JSONObject, JSONValue

STRUCT = "MessagesRequest"
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "max", "xhigh": "high"}
_CHOICES = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}


def new_id(prefix: str) -> str:
    """Anthropic-style ids: ``msg_…``, ``toolu_…``."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class MessagesRequest:
    """A translated request: the native chat body and what shapes the reply."""

    native: JSONObject
    model: str
    stream: bool = False
    tool_choice: ToolChoice = ToolChoice()
    id: str = field(default_factory=lambda: new_id("msg"))

    @classmethod
    def parse(cls, body: JSONObject, *, count_only: bool = False) -> MessagesRequest:
        model = typed_field(body, STRUCT, "model", "string", default="").strip()
        if not model:
            raise InvalidRequestError("model is required")
        max_tokens = typed_field(body, STRUCT, "max_tokens", "int", default=0)
        if max_tokens <= 0 and not count_only:
            raise InvalidRequestError("max_tokens is required and must be positive")
        raw_messages = typed_field(body, STRUCT, "messages", "array",
                                   "[]anthropic.MessageParam", [])
        if not raw_messages:
            raise InvalidRequestError("messages is required")
        messages = system_messages(body.get("system")) + native_messages(raw_messages)
        native: dict[str, Any] = {"model": model, "messages": messages,
                                  "options": sampling_options(body, max_tokens)}
        if tools := [native_tool(t) for t in typed_field(body, STRUCT, "tools", "array",
                                                    "[]anthropic.Tool", [])]:
            native["tools"] = tools
        if (think := thinking(body)) is not None:
            native["think"] = think
        typed_field(body, STRUCT, "metadata", "object", "*anthropic.Metadata")  # accepted, unused
        return cls(native=native, model=model,
                   stream=typed_field(body, STRUCT, "stream", "bool", default=False),
                   tool_choice=tool_choice(body.get("tool_choice")))


def sampling_options(body: JSONObject, max_tokens: int) -> JSONObject:
    options: dict[str, Any] = {"num_predict": max_tokens} if max_tokens > 0 else {}
    for name, native in (("temperature", "temperature"), ("top_p", "top_p")):
        if (value := typed_field(body, STRUCT, name, "number", "float64")) is not None:
            options[native] = value
    if (top_k := typed_field(body, STRUCT, "top_k", "int")) is not None:
        options["top_k"] = top_k
    stops = typed_field(body, STRUCT, "stop_sequences", "array", "[]string", [])
    if any(not isinstance(s, str) for s in stops):
        raise InvalidRequestError("stop_sequences must be a list of strings")
    if stops:
        options["stop"] = stops
    return options


def thinking(body: JSONObject) -> bool | str | None:
    """``thinking.type`` enabled/disabled; a budget picks a level (under 4k tokens low, under
    16k medium, else high); else ``output_config.effort``."""
    config = typed_field(body, STRUCT, "thinking", "object", "*anthropic.ThinkingConfig")
    kind = config.get("type") if config else None
    if kind == "disabled":
        return False
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
            return True
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    output = typed_field(body, STRUCT, "output_config", "object", "*anthropic.OutputConfig") or {}
    effort = str(output.get("effort") or "").strip().lower()
    return _EFFORTS.get(effort)


def tool_choice(raw: object) -> ToolChoice:
    if raw is None:
        return ToolChoice()
    choice: JSONObject = raw if isinstance(raw, dict) else {}
    kind = choice.get("type")
    if kind not in _CHOICES:
        raise InvalidRequestError('tool_choice.type must be "auto", "any", "tool" or "none"')
    name = choice.get("name") if kind == "tool" else ""
    if kind == "tool" and (not isinstance(name, str) or not name):
        raise InvalidRequestError('tool_choice of type "tool" needs a name')
    return ToolChoice(_CHOICES[kind], name or "")


def native_tool(tool: object) -> JSONObject:
    """A client tool (``custom``) as a native function tool; server tools are refused."""
    if not isinstance(tool, dict):
        raise unmarshal_error(tool, f"{STRUCT}.tools", "anthropic.Tool")
    kind = tool.get("type") or "custom"
    if kind != "custom":
        raise InvalidRequestError(f"tool type {kind!r} is not supported: Corral runs no server "
                                  "tools, declare a custom tool and run it yourself")
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("tools: every tool needs a name")
    schema = tool.get("input_schema")
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequestError(f"invalid input_schema for tool {name!r}: not an object")
    function: dict[str, Any] = {"name": name}
    if tool.get("description"):
        function["description"] = str(tool["description"])
    function["parameters"] = schema or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def system_messages(system: object) -> list[JSONObject]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        text = "".join(b.get("text", "") for b in system
                       if isinstance(b, dict) and b.get("type") == "text"
                       and isinstance(b.get("text"), str))
        return [{"role": "system", "content": text}] if text else []
    raise InvalidRequestError("system must be a string or a list of text blocks")


def native_messages(messages: list[JSONValue]) -> list[JSONObject]:
    names: dict[str, str] = {}  # tool_use id → tool name, for the results that answer them
    out: list[JSONObject] = []
    for raw in messages:
        if not isinstance(raw, dict):
            raise unmarshal_error(raw, f"{STRUCT}.messages", "anthropic.MessageParam")
        out += _message(raw, names)
    return out


def _blocks(content: object) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(b, dict) for b in content):
        return content
    raise InvalidRequestError("message content must be a string or a list of content blocks")


def _message(raw: JSONObject, names: dict[str, str]) -> list[JSONObject]:
    role = str(raw.get("role") or "").lower()
    if role not in ("user", "assistant"):
        raise InvalidRequestError(f'message role must be "user" or "assistant", not {role!r}')
    text: list[str] = []
    images: list[str] = []
    calls: list[JSONObject] = []
    results: list[JSONObject] = []
    thought = ""
    for block in _blocks(raw.get("content")):
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text") or ""))
        elif kind == "image":
            images.append(image_data(block.get("source")))
        elif kind == "tool_use":
            calls.append(_tool_use(block, len(calls)))
            names[block["id"]] = block["name"]
        elif kind == "tool_result":
            results.append(_tool_result(block, names))
        elif kind == "thinking":
            thought = str(block.get("thinking") or "")
        # redacted_thinking, documents and other block types carry nothing a local model reads
    message: dict[str, Any] = {"role": role, "content": "".join(text)}
    if images:
        message["images"] = images
    if calls:
        message["tool_calls"] = calls
    if thought:
        message["thinking"] = thought
    body = [message] if message["content"] or images or calls or thought else []
    return results + body if role == "user" else body + results


def image_data(source: object) -> str:
    """The base64 payload of an image source (only ``base64`` sources, as Ollama)."""
    if not isinstance(source, dict):
        raise InvalidRequestError("invalid image source")
    if source.get("type") != "base64":
        raise InvalidRequestError(f"invalid image source type: {source.get('type')}. Only "
                                  "base64 images are supported.")
    data = source.get("data")
    if not isinstance(data, str):
        raise InvalidRequestError("invalid base64 image data")
    try:
        check_base64(data)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"invalid base64 image data: {exc.message}") from None
    return data


def _tool_use(block: JSONObject, index: int) -> JSONObject:
    for key in ("id", "name"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise InvalidRequestError(f"tool_use block missing required '{key}' field")
    arguments = block.get("input") if block.get("input") is not None else {}
    if not isinstance(arguments, dict):
        raise InvalidRequestError("tool_use input must be an object")
    return {"id": block["id"], "function": {"index": index, "name": block["name"],
                                            "arguments": arguments}}


def _tool_result(block: JSONObject, names: dict[str, str]) -> JSONObject:
    content, images = block.get("content"), []
    if isinstance(content, list):
        parts = [b for b in content if isinstance(b, dict)]
        images = [image_data(b.get("source")) for b in parts if b.get("type") == "image"]
        content = "".join(str(b.get("text") or "") for b in parts if b.get("type") == "text")
    elif content is None:
        content = ""
    elif not isinstance(content, str):
        raise InvalidRequestError("tool_result content must be a string or a list of blocks")
    call_id = str(block.get("tool_use_id") or "")
    message: dict[str, Any] = {"role": "tool", "content": content, "tool_call_id": call_id}
    if call_id in names:
        message["tool_name"] = names[call_id]
    if images:
        message["images"] = images
    return message
