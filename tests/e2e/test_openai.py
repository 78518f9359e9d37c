"""The OpenAI-compatible ``/v1`` API driven by the official ``openai`` Python package against a
real ``corral serve`` and the real SmolLM2 model (no hand-rolled HTTP here)."""

from __future__ import annotations

import json
import math

import openai
import pytest

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 42, "max_tokens": 8}
ASK = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def client(corral) -> openai.OpenAI:
    return openai.OpenAI(base_url=corral.url + "/v1", api_key="corral", max_retries=0,
                         timeout=120)


def test_chat_completion(client):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, **GREEDY)
    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion"
    assert reply.model == MODEL and reply.system_fingerprint == "fp_ollama"
    (choice,) = reply.choices
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert 0 < reply.usage.completion_tokens <= GREEDY["max_tokens"]
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_stream_matches_non_stream_and_reports_usage(client):
    whole = client.chat.completions.create(model=MODEL, messages=ASK, **GREEDY)
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=ASK, stream=True, stream_options={"include_usage": True}, **GREEDY))
    *content, finish, usage = chunks
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert content[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in content[1:])
    text = "".join(c.choices[0].delta.content or "" for c in content)
    assert text == whole.choices[0].message.content
    assert finish.choices[0].finish_reason == whole.choices[0].finish_reason
    assert usage.choices == [] and usage.usage.completion_tokens == whole.usage.completion_tokens


def test_stop_sequence_is_not_in_the_output(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count from 1 to 10, comma separated."}],
        temperature=0, max_tokens=12, stop=["3"])
    content = reply.choices[0].message.content
    assert "2" in content and "3" not in content  # it got as far as the stop, no further
    assert reply.choices[0].finish_reason == "stop"


def test_response_format_json_schema_parses(client):
    schema = {"type": "object", "properties": {"colour": {"type": "string"}},
              "required": ["colour"]}
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Give me a colour as JSON."}],
        temperature=0, max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    answer = json.loads(reply.choices[0].message.content)
    assert isinstance(answer, dict) and isinstance(answer["colour"], str)


def test_completions(client):
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8,
                                      temperature=0)
    assert reply.id.startswith("cmpl-") and reply.object == "text_completion"
    assert reply.choices[0].text and reply.choices[0].finish_reason in ("stop", "length")
    assert 0 < reply.usage.completion_tokens <= 8
    chunks = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8,
                                            temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reply.choices[0].text


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    model = client.models.retrieve(MODEL)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "library")
    assert model.created > 0
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("nope")
    assert caught.value.status_code == 404


def test_embeddings(client):
    # The client asks for base64 unless told otherwise, and decodes it
    reply = client.embeddings.create(model=MODEL, input=["a red apple", "a green pear"])
    assert [d.index for d in reply.data] == [0, 1]
    assert reply.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=MODEL, input="a red apple", encoding_format="float")
    for vector in (reply.data[0].embedding, floats.data[0].embedding):
        assert len(vector) == 576 and abs(math.sqrt(sum(v * v for v in vector)) - 1) < 1e-4
    assert reply.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-7)


def test_errors_have_openai_shape(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[])
    assert caught.value.body == {"message": "[] is too short - 'messages'",
                                 "type": "invalid_request_error", "param": None, "code": None}
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=ASK)
    assert caught.value.body["message"] == "model 'nope' not found"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")


def test_tools_reach_the_native_capability_check(client):
    # SmolLM2's chat template has no tools: the native 400 comes back in OpenAI's shape
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ASK, tools=tools)
    assert caught.value.body["message"] == (
        "registry.ollama.ai/library/smollm2:135m does not support tools")
