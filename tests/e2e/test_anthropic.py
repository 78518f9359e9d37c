"""Anthropic's Messages API driven by the official ``anthropic`` package against a real
``corral serve`` and the real SmolLM2 model: text, streaming, system prompts, a tool round trip
with a forced ``tool_choice``, count_tokens, and Anthropic's error shape."""

from __future__ import annotations

import json
import urllib.request

import anthropic
import pytest

from tests.e2e.model_helpers import TOOLS_TEMPLATE, created

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 42}  # this SDK has no sampling arguments: sent as extras
ASK = [{"role": "user", "content": "Name a colour."}]
WEATHER = {"name": "get_weather", "description": "Get the current weather for a city",
           "input_schema": {"type": "object", "required": ["city"], "properties": {
               "city": {"type": "string", "maxLength": 20, "description": "The city"}}}}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(corral) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=corral.url, api_key="corral", max_retries=0,
                               timeout=120)


def test_text_message(client):
    reply = client.messages.create(model=MODEL, max_tokens=12, messages=ASK, extra_body=GREEDY)
    assert reply.id.startswith("msg_") and reply.type == "message" and reply.role == "assistant"
    assert reply.model == MODEL
    (block,) = reply.content
    assert block.type == "text" and block.text.strip()
    assert reply.stop_reason in ("end_turn", "max_tokens") and reply.stop_sequence is None
    assert reply.usage.input_tokens > 0 and 0 < reply.usage.output_tokens <= 12


def test_stream_matches_the_message_and_opens_with_a_ping(client, corral):
    whole = client.messages.create(model=MODEL, max_tokens=12, messages=ASK, extra_body=GREEDY)
    with client.messages.stream(model=MODEL, max_tokens=12, messages=ASK,
                                extra_body=GREEDY) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert final.content[0].text == whole.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    # the SDK hides pings: read the raw event stream once
    body = json.dumps({"model": MODEL, "max_tokens": 4, "messages": ASK, "stream": True})
    request = urllib.request.Request(corral.url + "/v1/messages", data=body.encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        names = [line[len(b"event: "):].strip().decode() for line in response
                 if line.startswith(b"event: ")]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta",
                                                                     "message_stop"]


def test_system_prompt_is_rendered(client):
    plain = client.messages.count_tokens(model=MODEL, messages=ASK)
    system = client.messages.count_tokens(model=MODEL, messages=ASK,
                                          system="You are a pirate. Speak like one.")
    blocks = client.messages.count_tokens(model=MODEL, messages=ASK, system=[
        {"type": "text", "text": "You are a pirate. Speak like one."}])
    # SmolLM2's template puts a default system prompt in unless the request has its own
    assert system.input_tokens == blocks.input_tokens != plain.input_tokens
    reply = client.messages.create(model=MODEL, max_tokens=8, messages=ASK, extra_body=GREEDY,
                                   system="You are a pirate. Speak like one.")
    assert reply.content[0].text.strip()


def test_count_tokens_counts_what_the_model_reads(client):
    question = [{"role": "user", "content": "Count these words for me, one by one, please."}]
    counted = client.messages.count_tokens(model=MODEL, messages=question).input_tokens
    longer = client.messages.count_tokens(model=MODEL, messages=[
        {"role": "user", "content": question[0]["content"] + " And again."}]).input_tokens
    reply = client.messages.create(model=MODEL, max_tokens=1, messages=question,
                                   extra_body={**GREEDY, "seed": 7})
    assert 20 < counted < longer
    assert reply.usage.input_tokens <= counted  # a reused prompt prefix is not evaluated again


def test_tool_round_trip_with_a_forced_tool_choice(client, corral):
    with created(corral, "smol-claude-tools", template=TOOLS_TEMPLATE) as name:
        forced = {"type": "tool", "name": "get_weather"}
        reply = client.messages.create(model=name, max_tokens=64, messages=QUESTION,
                                       tools=[WEATHER], tool_choice=forced, extra_body=GREEDY)
        (call,) = reply.content
        assert call.type == "tool_use" and call.name == "get_weather"
        assert isinstance(call.input["city"], str) and call.id.startswith("call_")
        assert reply.stop_reason == "tool_use"
        with client.messages.stream(model=name, max_tokens=64, messages=QUESTION,
                                    tools=[WEATHER], tool_choice=forced,
                                    extra_body=GREEDY) as stream:
            streamed = stream.get_final_message()
        assert [(b.type, b.name, b.input) for b in streamed.content] == [
            ("tool_use", "get_weather", call.input)]
        follow_up = QUESTION + [
            {"role": "assistant", "content": [call.model_dump(include={"type", "id", "name",
                                                                      "input"})]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                          "content": "Sunny, 24 degrees Celsius."}]}]
        answer = client.messages.create(model=name, max_tokens=24, messages=follow_up,
                                        tools=[WEATHER], tool_choice={"type": "none"},
                                        extra_body=GREEDY)
        assert answer.content and answer.content[0].type == "text"
        assert answer.content[0].text.strip()
        assert answer.stop_reason in ("end_turn", "max_tokens")


def test_errors_have_anthropics_shape(client):
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=8, messages=ASK)
    assert missing.value.status_code == 404
    assert missing.value.body["type"] == "error"
    assert missing.value.body["error"] == {"type": "not_found_error",
                                           "message": "model 'no-such-model' not found"}
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model=MODEL, max_tokens=8, messages=[
            {"role": "user", "content": [{"type": "image", "source": {
                "type": "url", "url": "https://example.com/cat.png"}}]}])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert "Only base64 images are supported" in bad.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="does not support tools"):
        client.messages.create(model=MODEL, max_tokens=8, messages=ASK, tools=[WEATHER])
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="no-such-model", messages=ASK)
