"""``/v1/responses``: OpenAI's Responses API, stateless as Ollama serves it.

A request becomes a native chat body (``instructions`` → a system message, ``input`` items →
messages, function calls and their outputs → assistant ``tool_calls`` and ``tool`` messages);
the merged native reply becomes a ``response`` object whose ``output`` holds a reasoning item
(when the model thought), a message item (when it wrote) and one item per function call.
``previous_response_id`` and ``conversation`` need stored state, so they are refused.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.openai.chat import (image_data, native_tool_calls, openai_tool_calls, reasoning,
                                 with_message_index)
from services.errors import InvalidRequestError
from services.gocodec import json_kind, typed_field, unmarshal_error
from services.json_types import JSONObject, JSONValue

STRUCT = "ResponsesRequest"


def new_id(prefix: str) -> str:
    return f"{prefix}_{random.randrange(999)}"


@dataclass(frozen=True)
class ResponsesRequest:
    """A translated request: the native chat body plus what the reply echoes."""

    native: JSONObject
    stream: bool = False
    echo: JSONObject = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def parse(cls, body: JSONObject) -> ResponsesRequest:
        for unsupported in ("previous_response_id", "conversation"):
            if body.get(unsupported):
                raise InvalidRequestError(f"{unsupported} is not supported: Corral's responses "
                                          "are stateless, send the whole conversation as input")
        instructions = typed_field(body, STRUCT, "instructions", "string", default="")
        messages = [{"role": "system", "content": instructions}] if instructions else []
        messages += input_messages(body.get("input"))
        stream = typed_field(body, STRUCT, "stream", "bool", default=False)
        options: dict[str, Any] = {
            "temperature": typed_field(body, STRUCT, "temperature", "number", "float64", 1.0)}
        if (top_p := typed_field(body, STRUCT, "top_p", "number", "float64")) is not None:
            options["top_p"] = top_p
        if (limit := typed_field(body, STRUCT, "max_output_tokens", "int")) is not None:
            options["num_predict"] = limit
        native: dict[str, Any] = {"model": typed_field(body, STRUCT, "model", "string", default=""),
                                  "messages": messages, "stream": stream, "options": options}
        tools = typed_field(body, STRUCT, "tools", "array", "[]Tool", [])
        if tools:
            native["tools"] = [native_tool(t) for t in tools]
        if (think := reasoning(body)) is not None:
            native["think"] = think
        fmt = format_of(body)
        if (constraint := output_constraint(fmt)) is not None:
            native["format"] = constraint
        echo = {"instructions": instructions or None, "temperature": options["temperature"],
                "top_p": options.get("top_p", 1.0), "max_output_tokens": options.get("num_predict"),
                "tools": tools, "text": {"format": fmt}}
        return cls(native=native, stream=stream, echo=echo)


# -- request translation --------------------------------------------------------------------------

def input_messages(raw: object) -> list[JSONObject]:
    """``input`` as native messages: a string is one user message, a list holds items."""
    if raw is None:
        raise InvalidRequestError("input is required")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise unmarshal_error(raw, f"{STRUCT}.input", "openai.ResponsesInput")
    messages: list[JSONObject] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidRequestError("invalid input item")
        messages += with_message_index([_item_message(item, raw)], index)
    return messages


def _item_message(item: JSONObject, items: list[JSONValue]) -> JSONObject:
    kind = item.get("type") or ("message" if "role" in item else "")
    if kind == "message":
        return _message(item)
    if kind == "function_call":
        call = {"id": item.get("call_id") or "",
                "function": {"name": item.get("name") or "", "arguments": item.get("arguments")}}
        return {"role": "assistant", "content": "", "tool_calls": native_tool_calls([call])}
    if kind == "function_call_output":
        call_id = item.get("call_id") or ""
        name = next((i.get("name", "") for i in items if isinstance(i, dict)
                     and i.get("type") == "function_call" and i.get("call_id") == call_id), "")
        output = item.get("output")
        return {"role": "tool", "content": output if isinstance(output, str) else str(output),
                "tool_name": name, "tool_call_id": call_id}
    if kind == "reasoning":
        summary = "".join(s.get("text", "") for s in item.get("summary") or []
                          if isinstance(s, dict))
        return {"role": "assistant", "content": "", "thinking": summary}
    raise InvalidRequestError(f"unsupported input item type: {kind!r}")


def _message(item: JSONObject) -> JSONObject:
    role = item.get("role") or "user"
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidRequestError("invalid message content")
    texts, images = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
        elif kind == "input_image":
            images.append(image_data(part.get("image_url")))
        else:
            raise InvalidRequestError(f"unsupported content part type: {kind!r}")
    message: dict[str, Any] = {"role": role, "content": "".join(texts)}
    if images:
        message["images"] = images
    return message


def native_tool(tool: object) -> JSONObject:
    """A Responses function tool (flat) as a native tool (``function`` nested)."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else json_kind(tool)
        raise InvalidRequestError(f"unsupported tool type: {kind!r}")
    function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
    return {"type": "function", "function": function}


def format_of(body: JSONObject) -> JSONObject:
    """``text.format`` (``{"type": "text"}`` when absent), echoed in the reply as given."""
    text = typed_field(body, STRUCT, "text", "object", "openai.ResponsesText", {})
    fmt = text.get("format")
    return fmt if isinstance(fmt, dict) else {"type": "text"}


def output_constraint(fmt: JSONObject) -> object:
    """The native ``format``: ``json_schema`` ⇒ its schema, ``json_object`` ⇒ ``"json"``."""
    if fmt.get("type") == "json_schema":
        return fmt.get("schema")
    if fmt.get("type") == "json_object":
        return "json"
    return None


# -- reply ----------------------------------------------------------------------------------------

def reasoning_item(item_id: str, text: str, status: str = "completed") -> JSONObject:
    return {"id": item_id, "type": "reasoning", "status": status,
            "summary": [{"type": "summary_text", "text": text}] if text else []}


def message_item(item_id: str, text: str, status: str = "completed") -> JSONObject:
    content = [output_text(text)] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": content}


def output_text(text: str) -> JSONObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_items(native_calls: list[JSONObject]) -> list[JSONObject]:
    return [{"id": new_id("fc"), "type": "function_call", "status": "completed",
             "call_id": call["id"] or new_id("call"), "name": call["function"]["name"],
             "arguments": call["function"]["arguments"]}
            for call in openai_tool_calls(native_calls)]


def response_object(req: ResponsesRequest, status: str, output: list[JSONObject],
                    native: JSONObject | None = None) -> JSONObject:
    """The ``response`` object; ``native`` (the final chat object) supplies usage."""
    obj: dict[str, Any] = {
        "id": req.id, "object": "response", "created_at": req.created_at, "status": status,
        "completed_at": int(time.time()) if status in ("completed", "incomplete") else None,
        "error": None, "incomplete_details": None,
        "model": (native or {}).get("model") or req.native["model"], "output": output,
        "parallel_tool_calls": True, "tool_choice": "auto", "metadata": {}, **req.echo}
    if status == "incomplete":
        obj["incomplete_details"] = {"reason": "max_output_tokens"}
    if native is not None:
        prompt, completion = native.get("prompt_eval_count", 0), native.get("eval_count", 0)
        obj["usage"] = {"input_tokens": prompt, "output_tokens": completion,
                        "total_tokens": prompt + completion,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens_details": {"reasoning_tokens": 0}}
    return obj


def final_status(native: JSONObject) -> str:
    return "incomplete" if native.get("done_reason") == "length" else "completed"


def response(req: ResponsesRequest, native: JSONObject) -> JSONObject:
    """The ``stream:false`` reply from the merged native chat object."""
    message = native.get("message") or {}
    output = []
    if message.get("thinking"):
        output.append(reasoning_item(new_id("rs"), message["thinking"]))
    if message.get("content"):
        output.append(message_item(new_id("msg"), message["content"]))
    output += function_call_items(message.get("tool_calls") or [])
    return response_object(req, final_status(native), output, native)
