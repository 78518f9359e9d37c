"""``/v1/responses`` driven by the official ``openai`` package against a real server and model."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "max_output_tokens": 10}


@pytest.fixture(scope="module")
def client(corral) -> openai.OpenAI:
    return openai.OpenAI(base_url=corral.url + "/v1", api_key="corral", max_retries=0,
                         timeout=120)


def test_a_response_from_a_string_input(client) -> None:
    reply = client.responses.create(model=MODEL, input="Name a colour.", **GREEDY)
    assert reply.id.startswith("resp_") and reply.object == "response"
    assert reply.status in ("completed", "incomplete") and reply.model == MODEL
    assert reply.output_text.strip()
    assert 0 < reply.usage.output_tokens <= 10
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
    (item,) = reply.output
    assert item.type == "message" and item.role == "assistant"


def test_streamed_events_add_up_to_the_same_answer(client) -> None:
    whole = client.responses.create(model=MODEL, input="Name a colour.", **GREEDY)
    events = list(client.responses.create(model=MODEL, input="Name a colour.", stream=True,
                                          **GREEDY))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == whole.output_text == events[-1].response.output_text
    assert "response.output_item.added" in types and "response.output_item.done" in types


def test_instructions_and_message_items(client) -> None:
    reply = client.responses.create(
        model=MODEL, instructions="Answer with one word.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Name a fruit."}]}],
        **GREEDY)
    assert reply.output_text.strip() and reply.instructions == "Answer with one word."


def test_json_schema_output_parses(client) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}},
              "required": ["colour"]}
    reply = client.responses.create(
        model=MODEL, input="Name a colour as JSON.", temperature=0, max_output_tokens=40,
        text={"format": {"type": "json_schema", "name": "colour", "schema": schema}})
    assert isinstance(json.loads(reply.output_text)["colour"], str)


def test_errors_have_openai_shape(client) -> None:
    with pytest.raises(openai.NotFoundError, match="model 'nope:1b' not found"):
        client.responses.create(model="nope:1b", input="hi")
    with pytest.raises(openai.BadRequestError, match="does not support tools"):
        client.responses.create(model=MODEL, input="hi", tools=[
            {"type": "function", "name": "f", "parameters": {"type": "object"}}])
    with pytest.raises(openai.BadRequestError, match="stateless"):
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_1")
