"""``/v1/responses`` translation without a server: input items → native messages, and native
chat objects (thinking, text, tool calls) → the response object and its event sequence."""

from __future__ import annotations

import pytest

from gateway.openai.responses import ResponsesRequest, response
from gateway.openai.responses_stream import ResponseEvents
from services.errors import InvalidRequestError


def parse(**body) -> ResponsesRequest:
    return ResponsesRequest.parse({"model": "m", **body})


def test_items_become_native_messages() -> None:
    req = parse(instructions="Be brief.", max_output_tokens=5, top_p=0.5, input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in "},
                                     {"type": "input_text", "text": "Paris?"}]},
        {"type": "function_call", "call_id": "c1", "name": "weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ], tools=[{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
        text={"format": {"type": "json_object"}}, reasoning={"effort": "low"})
    native = req.native
    assert native["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "function": {"index": 0, "name": "weather",
                                      "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "weather", "tool_call_id": "c1"}]
    assert native["tools"] == [{"type": "function", "function": {
        "name": "weather", "parameters": {"type": "object"}}}]
    assert native["options"] == {"temperature": 1.0, "top_p": 0.5, "num_predict": 5}
    assert native["format"] == "json" and native["think"] == "low"


@pytest.mark.parametrize("body, message", [
    ({}, "input is required"),
    ({"input": "x", "previous_response_id": "resp_1"}, "stateless"),
    ({"input": [{"type": "mystery"}]}, "unsupported input item type"),
    ({"input": "x", "tools": [{"type": "web_search"}]}, "unsupported tool type"),
])
def test_bad_requests(body: dict, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse(**body)


NATIVE = [
    {"model": "m", "message": {"role": "assistant", "content": "", "thinking": "Hmm"},
     "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "lo"}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"index": 0, "name": "f", "arguments": {"a": 1}}}]},
     "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 4},
]


async def test_streamed_events_and_the_final_response_agree() -> None:
    async def objects():
        for obj in NATIVE:
            yield obj

    events = [e async for e in ResponseEvents(parse(input="hi")).stream(objects())]
    types = [e["type"] for e in events]
    assert types == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][1]["content"][0]["text"] == "Hello"
    assert final["output"][2]["arguments"] == '{"a":1}'
    assert final["usage"]["total_tokens"] == 7
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.done"] == [
        0, 1, 2]


def test_the_non_streamed_response_has_the_same_items() -> None:
    merged = {**NATIVE[-1], "message": {"role": "assistant", "content": "Hello",
                                        "thinking": "Hmm",
                                        "tool_calls": NATIVE[-1]["message"]["tool_calls"]}}
    reply = response(parse(input="hi"), merged)
    assert reply["status"] == "completed"
    assert [item["type"] for item in reply["output"]] == ["reasoning", "message", "function_call"]
    cut = response(parse(input="hi"), {**merged, "done_reason": "length"})
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}
