"""The official ``ollama`` Python package as a client of a real ``corral serve`` with the real
SmolLM2 model (no hand-rolled HTTP here)."""

from __future__ import annotations

import math

import ollama
import pytest

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 8}
ASK = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def client(corral) -> ollama.Client:
    return ollama.Client(host=corral.url, timeout=120)


def test_list(client):
    (model,) = [m for m in client.list().models if m.model == MODEL]
    assert model.size > 90_000_000 and len(model.digest) == 64
    assert model.details.format == "gguf" and model.details.quantization_level == "Q4_1"


def test_show(client):
    shown = client.show(MODEL)
    assert shown.details.family == "llama" and shown.modelinfo
    assert shown.modelinfo["general.architecture"] == "llama"


def test_generate_stream_and_not(client):
    whole = client.generate(model=MODEL, prompt="Say hello.", options=GREEDY)
    assert whole.done and whole.done_reason in ("stop", "length") and whole.response
    assert 0 < whole.eval_count <= GREEDY["num_predict"] and whole.context
    parts = list(client.generate(model=MODEL, prompt="Say hello.", options=GREEDY, stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == whole.response


def test_chat_stream_and_not(client):
    whole = client.chat(model=MODEL, messages=ASK, options=GREEDY)
    assert whole.message.role == "assistant" and whole.message.content
    assert whole.done and whole.prompt_eval_count > 0
    parts = list(client.chat(model=MODEL, messages=ASK, options=GREEDY, stream=True))
    assert parts[-1].done and parts[-1].done_reason == whole.done_reason
    assert "".join(p.message.content for p in parts) == whole.message.content


def test_embed_and_legacy_embeddings(client):
    reply = client.embed(model=MODEL, input=["a red apple", "a green pear"])
    assert reply.model == MODEL and len(reply.embeddings) == 2
    for vector in reply.embeddings:
        assert len(vector) == 576 and abs(math.sqrt(sum(v * v for v in vector)) - 1) < 1e-4
    assert len(client.embed(model=MODEL, input="hi", dimensions=8).embeddings[0]) == 8
    legacy = client.embeddings(model=MODEL, prompt="a red apple")
    assert len(legacy.embedding) == 576


def test_ps_shows_the_loaded_model(client):
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 1})
    loaded = client.ps().models
    assert MODEL in [m.model for m in loaded]
    assert all(m.expires_at is not None and m.size > 0 for m in loaded)


def test_errors_are_response_errors(client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="nope", prompt="hi")
    assert (caught.value.status_code, caught.value.error) == (404, "model 'nope' not found")
    with pytest.raises(ollama.ResponseError) as caught:
        client.embed(model="nope", input="hi")
    assert caught.value.error == 'model "nope" not found, try pulling it first'
