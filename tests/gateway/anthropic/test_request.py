"""Anthropic Messages requests → native chat bodies (Ollama's mapping, plus tool_choice)."""

from __future__ import annotations

import pytest

from gateway.anthropic.request import MessagesRequest
from gateway.formats.forced import ToolChoice
from services.errors import InvalidRequestError

BASE = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PNG = "iVBORw0KGgo="


def parse(**fields) -> MessagesRequest:
    return MessagesRequest.parse({**BASE, **fields})


def test_system_options_and_tools():
    req = parse(system=[{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
                temperature=0.2, top_p=0.9, top_k=5, stop_sequences=["END"], tools=[TOOL],
                metadata={"user_id": "u1"}, stream=True)
    assert req.native["messages"][0] == {"role": "system", "content": "Be brief."}
    assert req.native["options"] == {"num_predict": 64, "temperature": 0.2, "top_p": 0.9,
                                     "top_k": 5, "stop": ["END"]}
    assert req.native["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "parameters": TOOL["input_schema"]}}]
    assert req.stream and req.id.startswith("msg_") and req.tool_choice == ToolChoice()


def test_blocks_become_native_messages_with_results_before_user_text():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Look: "},
                                     {"type": "image", "source": {"type": "base64",
                                                                  "media_type": "image/png",
                                                                  "data": PNG}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "call it", "signature": "x"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "sunny"}]},
            {"type": "text", "text": "And tomorrow?"}]}]
    native = parse(messages=messages).native["messages"]
    assert native == [
        {"role": "user", "content": "Look: ", "images": [PNG]},
        {"role": "assistant", "content": "Checking.", "thinking": "call it", "tool_calls": [
            {"id": "toolu_1", "function": {"index": 0, "name": "get_weather",
                                           "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "toolu_1",
         "tool_name": "get_weather"},
        {"role": "user", "content": "And tomorrow?"}]


@pytest.mark.parametrize("thinking,expected", [
    ({"type": "enabled", "budget_tokens": 1024}, "low"),
    ({"type": "enabled", "budget_tokens": 8000}, "medium"),
    ({"type": "enabled", "budget_tokens": 32000}, "high"),
    ({"type": "enabled"}, True), ({"type": "disabled"}, False)])
def test_thinking_budget_maps_to_think(thinking, expected):
    assert parse(thinking=thinking).native["think"] == expected


def test_effort_and_tool_choice():
    assert parse(output_config={"effort": "xhigh"}).native["think"] == "high"
    assert "think" not in parse().native
    assert parse(tool_choice={"type": "any"}).tool_choice == ToolChoice("required")
    assert parse(tool_choice={"type": "tool", "name": "f"}).tool_choice == ToolChoice("tool", "f")
    assert parse(tool_choice={"type": "none"}).tool_choice == ToolChoice("none")


@pytest.mark.parametrize("fields,message", [
    ({"model": ""}, "model is required"),
    ({"max_tokens": 0}, "max_tokens is required and must be positive"),
    ({"messages": []}, "messages is required"),
    ({"max_tokens": "9"}, "cannot unmarshal string into Go struct field MessagesRequest"
                          ".max_tokens of type int"),
    ({"messages": [{"role": "system", "content": "x"}]}, 'role must be "user" or "assistant"'),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "url", "url": "http://x"}}]}]}, "Only base64 images are supported"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "data": "!!"}}]}]}, "invalid base64 image data"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}]},
     "tool_use block missing required 'id' field"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "tool type 'web_search_20250305' is not supported"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type must be"),
    ({"tool_choice": {"type": "tool"}}, 'tool_choice of type "tool" needs a name'),
    ({"stop_sequences": [1]}, "stop_sequences must be a list of strings"),
])
def test_bad_requests_are_400s(fields, message):
    with pytest.raises(InvalidRequestError, match=message.replace("(", r"\(")):
        parse(**fields)


def test_count_tokens_needs_no_max_tokens():
    req = MessagesRequest.parse({"model": "m", "messages": BASE["messages"]}, count_only=True)
    assert req.native["options"] == {}
