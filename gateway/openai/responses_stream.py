"""``/v1/responses`` streaming: native chat objects → the Responses API's typed SSE events.

``response.created`` and ``response.in_progress`` open the stream. Thinking streams as a reasoning
item (``response.reasoning_summary_text.delta``), text as a message item with one output_text
part (``response.output_text.delta``); an item is closed (its ``.done`` events) when the other
kind starts, before function calls, and at the end. Function calls arrive whole, so each is
added, given its arguments in one delta, and done. ``response.completed`` (or ``incomplete``)
carries the whole response last. Every event has a ``sequence_number``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from gateway.openai.responses import (ResponsesRequest, new_id, final_status,
                                      function_call_items, message_item, output_text,
                                      reasoning_item, response_object)
from services.json_types import JSONObject


class ResponseEvents:
    """The event sequence of one streamed response."""

    def __init__(self, request: ResponsesRequest) -> None:
        self.request = request
        self.sequence = 0
        self.output: list[JSONObject] = []  # finished items, for the final response
        self.open: JSONObject | None = None  # the reasoning or message item being streamed
        self.text = ""

    async def stream(self, objects: AsyncGenerator[JSONObject, None]
                     ) -> AsyncGenerator[JSONObject, None]:
        async with contextlib.aclosing(objects):
            # an unknown model or a bad input fails before any event: a real 404/400 reply
            first = await anext(objects, None)
            yield self._event("response.created", response=self._response("in_progress"))
            yield self._event("response.in_progress", response=self._response("in_progress"))
            if first is not None:
                for event in self.convert(first):
                    yield event
            async for native in objects:
                for event in self.convert(native):
                    yield event

    def convert(self, native: JSONObject) -> list[JSONObject]:
        message = native.get("message") or {}
        events: list[JSONObject] = []
        if message.get("thinking"):
            events += self._delta("reasoning", message["thinking"])
        if message.get("content"):
            events += self._delta("message", message["content"])
        calls = message.get("tool_calls") or []
        if calls:
            events += self._close()
            for item in function_call_items(calls):
                events += self._function_call(item)
        if native.get("done"):
            events += self._close()
            status = final_status(native)
            kind = "response.completed" if status == "completed" else "response.incomplete"
            events.append(self._event(kind, response=self._response(status, native)))
        return events

    # -- items ----------------------------------------------------------------------------------

    def _delta(self, kind: str, text: str) -> list[JSONObject]:
        events = []
        if self.open is None or self.open["type"] != kind:
            events += self._close() + self._open(kind)
        self.text += text
        where = self._where()
        if kind == "reasoning":
            events.append(self._event("response.reasoning_summary_text.delta", **where,
                                      summary_index=0, delta=text))
        else:
            events.append(self._event("response.output_text.delta", **where, content_index=0,
                                      delta=text, logprobs=[]))
        return events

    def _open(self, kind: str) -> list[JSONObject]:
        reasoning = kind == "reasoning"
        self.open = (reasoning_item(new_id("rs"), "", "in_progress") if reasoning
                     else message_item(new_id("msg"), "", "in_progress"))
        added = self._event("response.output_item.added", output_index=len(self.output),
                            item=self.open)
        if reasoning:
            part = self._event("response.reasoning_summary_part.added", **self._where(),
                               summary_index=0, part={"type": "summary_text", "text": ""})
        else:
            part = self._event("response.content_part.added", **self._where(), content_index=0,
                               part=output_text(""))
        return [added, part]

    def _close(self) -> list[JSONObject]:
        if self.open is None:
            return []
        where, text = self._where(), self.text
        if self.open["type"] == "reasoning":
            item = reasoning_item(self.open["id"], text)
            events = [self._event("response.reasoning_summary_text.done", **where,
                                  summary_index=0, text=text),
                      self._event("response.reasoning_summary_part.done", **where,
                                  summary_index=0, part={"type": "summary_text", "text": text})]
        else:
            item = message_item(self.open["id"], text)
            events = [self._event("response.output_text.done", **where, content_index=0,
                                  text=text, logprobs=[]),
                      self._event("response.content_part.done", **where, content_index=0,
                                  part=output_text(text))]
        events.append(self._event("response.output_item.done", output_index=len(self.output),
                                  item=item))
        self.output.append(item)
        self.open, self.text = None, ""
        return events

    def _function_call(self, item: JSONObject) -> list[JSONObject]:
        index = len(self.output)
        started = {**item, "status": "in_progress", "arguments": ""}
        where = {"item_id": item["id"], "output_index": index}
        self.output.append(item)
        return [self._event("response.output_item.added", output_index=index, item=started),
                self._event("response.function_call_arguments.delta", **where,
                            delta=item["arguments"]),
                self._event("response.function_call_arguments.done", **where,
                            arguments=item["arguments"]),
                self._event("response.output_item.done", output_index=index, item=item)]

    # -- plumbing -------------------------------------------------------------------------------

    def _where(self) -> JSONObject:
        assert self.open is not None, "called only while an item is open"
        return {"item_id": self.open["id"], "output_index": len(self.output)}

    def _response(self, status: str, native: JSONObject | None = None) -> JSONObject:
        return response_object(self.request, status, list(self.output), native)

    def _event(self, kind: str, **fields: Any) -> JSONObject:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event
