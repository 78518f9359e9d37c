"""``/v1/chat/completions``: OpenAI's request → a native ``/api/chat`` body; native objects →
``chat.completion`` or a stream of ``chat.completion.chunk`` (Ollama HEAD's streaming shape)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import random
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from gateway.formats.forced import ToolChoice
from gateway.images import MESSAGE_INDEX
from gateway.openai.wire import (FINGERPRINT, TranslatedRequest, include_usage, openai_logprobs,
                                 refuse_logit_bias, sampling_options, usage,
                                 with_extension_options)
from services.errors import InvalidRequestError
from services.gocodec import encode_json, go_type_name, typed_field, unmarshal_error
from services.json_types import JSONObject, JSONValue

STRUCT = "ChatCompletionRequest"
_IMAGE_PREFIXES = ("data:;base64,", *(f"data:image/{kind};base64,"
                                      for kind in ("jpeg", "jpg", "png", "webp")))
_EFFORTS: dict[str, bool | str] = {
    "none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high",
    "max": "max", "xhigh": "max", "ultra": "max"}


@dataclass(frozen=True)
class ChatCompletionRequest(TranslatedRequest):
    """``/v1/chat/completions`` as a native chat body."""

    id: str = field(default_factory=lambda: f"chatcmpl-{random.randrange(999)}")
    tool_choice: ToolChoice = ToolChoice()

    @classmethod
    def parse(cls, body: JSONObject) -> ChatCompletionRequest:
        messages = typed_field(body, STRUCT, "messages", "array", "[]openai.Message", [])
        if not messages:
            raise InvalidRequestError("[] is too short - 'messages'")
        stream = typed_field(body, STRUCT, "stream", "bool", default=False)
        refuse_logit_bias(body)
        native: dict[str, Any] = {
            "model": typed_field(body, STRUCT, "model", "string", default=""),
            "messages": native_messages(messages), "stream": stream,
            "options": with_extension_options(body, STRUCT, sampling_options(body, STRUCT))}
        if (fmt := response_format(body)) is not None:
            native["format"] = fmt
        if tools := typed_field(body, STRUCT, "tools", "array", "[]api.Tool"):
            native["tools"] = tools
        if (think := reasoning(body)) is not None:
            native["think"] = think
        if typed_field(body, STRUCT, "logprobs", "bool", default=False):
            native["logprobs"] = True
            native["top_logprobs"] = typed_field(body, STRUCT, "top_logprobs", "int", default=0)
        return cls(native=native, stream=stream, tool_choice=tool_choice(body),
                   include_usage=stream and include_usage(body, STRUCT))


# -- request translation --------------------------------------------------------------------------

def response_format(body: JSONObject) -> object:
    """``json_object`` ⇒ ``"json"``; ``json_schema`` ⇒ its schema; anything else ⇒ none."""
    raw = typed_field(body, STRUCT, "response_format", "object", "openai.ResponseFormat")
    if raw is None:
        return None
    kind = typed_field(raw, "ResponseFormat", "type", "string", default="").strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = typed_field(raw, "ResponseFormat", "json_schema", "object", "openai.JsonSchema",
                             {})
        return schema.get("schema")
    return None


def tool_choice(body: JSONObject) -> ToolChoice:
    """``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", "function": {"name"}}``
    (Ollama ignores it; Corral forces the call with a grammar, as llama-server does)."""
    raw = body.get("tool_choice")
    if raw is None or raw in ("auto", "none", "required"):
        return ToolChoice(raw or "auto")
    name = ((raw.get("function") or {}).get("name") if isinstance(raw, dict)
            and isinstance(raw.get("function"), dict) else None)
    if not isinstance(name, str) or not name:
        raise InvalidRequestError('invalid tool_choice: expected "auto", "none", "required" or '
                                  '{"type": "function", "function": {"name": ...}}')
    return ToolChoice("tool", name)


def reasoning(body: JSONObject) -> bool | str | None:
    """``reasoning.effort`` or ``reasoning_effort`` as a native ``think`` value."""
    nested = typed_field(body, STRUCT, "reasoning", "object", "openai.Reasoning")
    effort = (typed_field(nested, "Reasoning", "effort", "string", default="") if nested
              else typed_field(body, STRUCT, "reasoning_effort", "string", default=""))
    if not effort:
        return None
    if effort not in _EFFORTS:
        *rest, last = (f'"{e}"' for e in _EFFORTS)
        choices = f"{', '.join(rest)}, or {last}"
        raise InvalidRequestError(f"invalid reasoning value: '{effort}' (must be {choices})")
    return _EFFORTS[effort]


def native_messages(messages: list[JSONValue]) -> list[JSONObject]:
    """OpenAI messages as native ones; each part of a content array becomes its own message."""
    out: list[JSONObject] = []
    for index, raw in enumerate(messages):
        if not isinstance(raw, dict):
            raise unmarshal_error(raw, f"{STRUCT}.messages", "openai.Message")
        out.extend(with_message_index(_translate(raw, messages), index))
    return out


def with_message_index(natives: list[JSONObject], index: int) -> list[JSONObject]:
    """Native messages carrying images remember the client's message index (for errors)."""
    for native in natives:
        if native.get("images"):
            native[MESSAGE_INDEX] = index
    return natives


def _translate(msg: JSONObject, history: list[JSONValue]) -> list[JSONObject]:
    role = typed_field(msg, "Message", "role", "string", default="")
    content = msg.get("content")
    calls = msg.get("tool_calls")
    extra: dict[str, Any] = {}
    if msg.get("reasoning"):
        extra["thinking"] = msg["reasoning"]
    if calls is not None:
        extra["tool_calls"] = native_tool_calls(calls)
    if role.lower() == "tool":
        call_id = msg.get("tool_call_id") or ""
        name = msg.get("name") or _tool_name(history, call_id)
        extra |= {k: v for k, v in (("tool_name", name), ("tool_call_id", call_id)) if v}
    if isinstance(content, str):
        return [{"role": role, "content": content, **extra}]
    if isinstance(content, list):
        parts = [_part(role, part) for part in content]
        if parts:
            parts[-1].update(extra)
        return parts
    if calls is None:  # content may only be missing next to tool calls
        raise InvalidRequestError(f"invalid message content type: {go_type_name(content)}")
    return [{"role": role, "content": "", **extra}]


def _part(role: str, part: object) -> JSONObject:
    if not isinstance(part, dict):
        raise InvalidRequestError("invalid message format")
    if part.get("type") == "text":
        if not isinstance(part.get("text"), str):
            raise InvalidRequestError("invalid message format")
        return {"role": role, "content": part["text"]}
    if part.get("type") == "image_url":
        return {"role": role, "content": "", "images": [image_data(part.get("image_url"))]}
    raise InvalidRequestError("invalid message format")


def image_data(image_url: object) -> str:
    """The base64 payload of a ``data:`` URL (remote URLs are refused, as in Ollama)."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise InvalidRequestError("invalid message format")
    if url.startswith(("http://", "https://")):
        raise InvalidRequestError("image URLs are not currently supported, please use base64 "
                                  "encoded data instead")
    prefix = next((p for p in _IMAGE_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        raise InvalidRequestError("invalid image input")
    data = url[len(prefix):]
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("invalid message format") from exc
    return data


def native_tool_calls(calls: object) -> list[JSONObject]:
    """OpenAI tool calls (arguments as a JSON string) as native ones (arguments an object)."""
    if not isinstance(calls, list):
        raise unmarshal_error(calls, f"{STRUCT}.messages.tool_calls", "[]openai.ToolCall")
    out = []
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        function = function if isinstance(function, dict) else {}
        try:
            arguments = json.loads(function.get("arguments") or "")
        except (TypeError, ValueError):
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequestError("invalid tool call arguments")
        native = {"function": {"index": index, "name": function.get("name") or "",
                               "arguments": arguments}}
        if call.get("id"):
            native = {"id": call["id"], **native}
        out.append(native)
    return out


def _tool_name(history: list[JSONValue], call_id: str) -> object:
    """The function name of the latest earlier tool call with this id ("last one wins"), as
    the client sent it (``ChatParams`` refuses one that is not a string)."""
    for msg in reversed(history):
        for call in (msg.get("tool_calls") or []) if isinstance(msg, dict) else []:
            if isinstance(call, dict) and call_id and call.get("id") == call_id:
                return (call.get("function") or {}).get("name", "")
    return ""


# -- responses ------------------------------------------------------------------------------------

def openai_tool_calls(calls: list[JSONObject] | None) -> list[JSONObject]:
    """Native tool calls as OpenAI's (arguments re-encoded as a JSON string)."""
    return [{"id": call.get("id", ""), "index": call["function"].get("index", 0),
             "type": "function",
             "function": {"name": call["function"].get("name", ""),
                          "arguments": encode_json(call["function"].get("arguments", {})).decode()}}
            for call in calls or []]


def finish_reason(done_reason: str | None, tool_calls: bool) -> str | None:
    if not done_reason:
        return None
    return "tool_calls" if tool_calls and done_reason == "stop" else done_reason


def chat_completion(request_id: str, native: JSONObject) -> JSONObject:
    """The ``stream:false`` reply from the merged native chat object."""
    message = native.get("message") or {}
    calls = openai_tool_calls(message.get("tool_calls"))
    reply: dict[str, Any] = {"role": "assistant", "content": message.get("content", "")}
    if message.get("thinking"):
        reply["reasoning"] = message["thinking"]
    if calls:
        reply["tool_calls"] = calls
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()),
            "model": native.get("model", ""), "system_fingerprint": FINGERPRINT,
            "choices": [_with_logprobs(
                {"index": 0, "message": reply,
                 "finish_reason": finish_reason(native.get("done_reason"), bool(calls))}, native)],
            "usage": usage(native)}


class ChatChunks:
    """Native chat objects → ``chat.completion.chunk`` objects, one id and ``created`` for all."""

    def __init__(self, request: ChatCompletionRequest) -> None:
        self.request = request
        self.created = int(time.time())
        self.role_sent = False
        self.tool_calls_sent = False

    async def stream(self, objects: AsyncGenerator[JSONObject, None]
                     ) -> AsyncGenerator[JSONObject, None]:
        """The chunks of every native object; closing this closes ``objects`` (and the runner's
        generation) at once."""
        async with contextlib.aclosing(objects):
            async for native in objects:
                for chunk in self.convert(native):
                    yield chunk

    def convert(self, native: JSONObject) -> list[JSONObject]:
        """The chunks one native object becomes (none for the metrics-only trailer's body)."""
        message = native.get("message") or {}
        thinking, content = message.get("thinking") or "", message.get("content") or ""
        calls = openai_tool_calls(message.get("tool_calls"))
        self.tool_calls_sent |= bool(calls)
        model, chunks = native.get("model", ""), []
        if thinking and (content or calls):  # split: reasoning first, then content/tool calls
            chunks.append(self._delta(model, {"reasoning": thinking}))
            chunks.append(self._delta(model, _content_delta(content, "", calls)))
        elif not native.get("done") or thinking or content or calls:
            chunks.append(self._delta(model, _content_delta(content, thinking, calls)))
        if native.get("done"):
            reason = finish_reason(native.get("done_reason"), self.tool_calls_sent)
            chunks.append(self._chunk(model, [{"index": 0, "delta": {}, "finish_reason": reason}]))
            if self.request.include_usage:
                chunks.append(self._chunk(model, [], usage=usage(native)))
        if chunks and chunks[0]["choices"]:  # the tokens of this object, on its first chunk
            chunks[0]["choices"][0] = _with_logprobs(chunks[0]["choices"][0], native)
        return chunks

    def _delta(self, model: str, delta: JSONObject) -> JSONObject:
        if not self.role_sent:
            delta, self.role_sent = {"role": "assistant", **delta}, True
        return self._chunk(model, [{"index": 0, "delta": delta, "finish_reason": None}])

    def _chunk(self, model: str, choices: list[JSONObject], **extra: Any) -> JSONObject:
        return {"id": self.request.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model, "system_fingerprint": FINGERPRINT, "choices": choices, **extra}


def _with_logprobs(choice: JSONObject, native: JSONObject) -> JSONObject:
    """``choice`` with ``logprobs`` before ``finish_reason`` when the native object has some."""
    if (logprobs := openai_logprobs(native)) is None:
        return choice
    reason = choice.pop("finish_reason", None)
    return {**choice, "logprobs": logprobs, "finish_reason": reason}


def _content_delta(content: str, thinking: str, calls: list[JSONObject]) -> JSONObject:
    delta: dict[str, Any] = {"content": content}
    if thinking:
        delta["reasoning"] = thinking
    if calls:
        delta["tool_calls"] = calls
    return delta
