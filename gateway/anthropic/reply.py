"""Native chat objects → Anthropic's ``message`` object and its typed stream events.

Blocks come in the order the model wrote them: ``thinking``, ``text``, then one ``tool_use``
per call (a tool call's input arrives whole, as one ``input_json_delta``). ``stop_reason``
is ``tool_use`` when the model called tools, ``max_tokens`` when it ran out, else
``end_turn``. The stream opens with ``message_start`` and a ``ping``; its input-token count
is an estimate until ``message_delta`` carries the real usage.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from gateway.anthropic.request import MessagesRequest
from services.json_types import JSONObject


def stop_reason(done_reason: str | None, tool_calls: bool) -> str | None:
    if tool_calls:
        return "tool_use"
    if not done_reason:
        return None
    return {"stop": "end_turn", "length": "max_tokens"}.get(done_reason, "end_turn")


def tool_use_block(call: JSONObject) -> JSONObject:
    function = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id") or "", "name": function.get("name", ""),
            "input": function.get("arguments") or {}}


def usage(native: JSONObject) -> JSONObject:
    return {"input_tokens": native.get("prompt_eval_count", 0),
            "output_tokens": native.get("eval_count", 0)}


def message_object(request: MessagesRequest, native: JSONObject) -> JSONObject:
    """The ``stream: false`` reply from the merged native chat object."""
    message = native.get("message") or {}
    content: list[JSONObject] = []
    if message.get("thinking"):
        content.append({"type": "thinking", "thinking": message["thinking"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    calls = message.get("tool_calls") or []
    content += [tool_use_block(call) for call in calls]
    return {"id": request.id, "type": "message", "role": "assistant",
            "model": native.get("model") or request.model, "content": content,
            "stop_reason": stop_reason(native.get("done_reason"), bool(calls)),
            "stop_sequence": None, "usage": usage(native)}


def estimated_input_tokens(request: MessagesRequest) -> int:
    """About four characters a token (Ollama's estimate) until the real count is known."""
    size = sum(len(m.get("content", "")) + len(m.get("role", "")) + len(m.get("thinking", ""))
               for m in request.native["messages"])
    size += len(json.dumps(request.native.get("tools", [])))
    return max(1, size // 4)


class MessageEvents:
    """Native chat objects → Anthropic stream events (``{"type": ...}`` dicts)."""

    def __init__(self, request: MessagesRequest) -> None:
        self.request = request
        self.started = False
        self.index = -1
        self.open: str | None = None  # the type of the block being streamed
        self.called = False

    async def stream(self, objects: AsyncGenerator[JSONObject, None]
                     ) -> AsyncGenerator[JSONObject, None]:
        async for native in objects:
            for event in self.convert(native):
                yield event

    def convert(self, native: JSONObject) -> list[JSONObject]:
        events: list[JSONObject] = []
        if not self.started:
            self.started = True
            events += [self._message_start(native), {"type": "ping"}]
        message = native.get("message") or {}
        if message.get("thinking"):
            events += self._delta("thinking", {"type": "thinking_delta",
                                               "thinking": message["thinking"]})
        if message.get("content"):
            events += self._delta("text", {"type": "text_delta", "text": message["content"]})
        for call in message.get("tool_calls") or []:
            events += self._tool_use(call)
        if native.get("done"):
            events += self._close()
            events.append({"type": "message_delta",
                           "delta": {"stop_reason": stop_reason(native.get("done_reason"),
                                                                self.called),
                                     "stop_sequence": None},
                           "usage": usage(native)})
            events.append({"type": "message_stop"})
        return events

    def keepalive(self) -> list[JSONObject]:
        """A ``ping`` while the model is silent (opening the message first if need be)."""
        if self.started:
            return [{"type": "ping"}]
        self.started = True
        return [self._message_start({}), {"type": "ping"}]

    def _message_start(self, native: JSONObject) -> JSONObject:
        return {"type": "message_start", "message": {
            "id": self.request.id, "type": "message", "role": "assistant",
            "model": native.get("model") or self.request.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": native.get("prompt_eval_count")
                      or estimated_input_tokens(self.request), "output_tokens": 0}}}

    def _delta(self, kind: str, delta: JSONObject) -> list[JSONObject]:
        events = []
        if self.open != kind:
            events += self._close()
            self.index += 1
            self.open = kind
            block: dict[str, Any] = ({"type": "thinking", "thinking": "", "signature": ""}
                                     if kind == "thinking" else {"type": "text", "text": ""})
            events.append({"type": "content_block_start", "index": self.index,
                           "content_block": block})
        events.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        return events

    def _tool_use(self, call: JSONObject) -> list[JSONObject]:
        events = self._close()
        self.index += 1
        self.called = True
        block = tool_use_block(call)
        arguments = json.dumps(block["input"], ensure_ascii=False, separators=(",", ":"))
        return events + [
            {"type": "content_block_start", "index": self.index,
             "content_block": {**block, "input": {}}},
            {"type": "content_block_delta", "index": self.index,
             "delta": {"type": "input_json_delta", "partial_json": arguments}},
            {"type": "content_block_stop", "index": self.index}]

    def _close(self) -> list[JSONObject]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]
