"""``/v1/completions``, ``/v1/models`` and ``/v1/embeddings`` through the real app with fake
runners and registry."""

from __future__ import annotations

import base64
import json
import re
import struct

import pytest

from gateway.app import create_app
from gateway.scheduler import Scheduler
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.gateway.fakes import FakeRegistry, FakeRunnerClient, install_tokenizer, resolved_model
from tests.gateway.sse import sse_events

MODEL = "smollm2:135m"


@pytest.fixture(autouse=True)
def fake_embed(monkeypatch) -> list[pb.EmbedRequest]:
    calls: list[pb.EmbedRequest] = []

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        calls.append(request)
        return pb.EmbedResponse(embeddings=[pb.Embedding(values=[0.0, 3.0, 4.0])
                                            for _ in request.inputs],
                                prompt_eval_count=2 * len(request.inputs))

    monkeypatch.setattr(FakeRunnerClient, "embed", embed, raising=False)
    install_tokenizer(monkeypatch)
    return calls


# -- /v1/completions ------------------------------------------------------------------------------

async def test_completion_non_stream(client, spawner):
    response = await client.post("/v1/completions", json={
        "model": MODEL, "prompt": "Once upon", "max_tokens": 4, "stop": ["x"]})
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert re.fullmatch(r"cmpl-\d{1,3}", body["id"])
    assert body["object"] == "text_completion" and body["system_fingerprint"] == "fp_ollama"
    assert body["choices"] == [{"text": "Hello, world!", "index": 0, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    (request,) = spawner.spawned[0].client.requests
    assert request.num_predict == 4 and list(request.stop) == ["x"]
    assert request.sampling.temperature == 1.0 and request.sampling.top_p == 1.0
    assert "Once upon" in request.prompt


async def test_completion_top_p_zero_means_default(client, spawner):
    await client.post("/v1/completions", json={"model": MODEL, "prompt": "a", "top_p": 0,
                                               "temperature": 0})
    sampling = spawner.spawned[0].client.requests[0].sampling
    assert sampling.top_p == 1.0 and sampling.temperature == 0


async def test_completion_stream_with_usage(client):
    response = await client.post("/v1/completions", json={
        "model": MODEL, "prompt": "a", "stream": True, "stream_options": {"include_usage": True}})
    assert response.headers["Content-Type"] == "text/event-stream"
    *chunks, last, usage, done = sse_events(await response.text())
    assert done == "[DONE]"
    assert [c["choices"][0]["text"] for c in chunks] == ["Hello", ",", " world", "!"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert last["choices"] == [{"text": "", "index": 0, "finish_reason": "stop"}]
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert all(c["usage"] == zero for c in [*chunks, last])
    assert list(chunks[0]) == ["id", "object", "created", "choices", "model",
                               "system_fingerprint", "usage"]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 11


@pytest.mark.parametrize("body,message", [
    ({"model": MODEL, "prompt": ["a", "b"]},
     "json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string"),
    ({"model": MODEL, "prompt": "a", "stop": ["ok", 3]}, "invalid type for 'stop' field: float64"),
    ({"model": MODEL, "prompt": "a", "temperature": "hot"},
     "json: cannot unmarshal string into Go struct field CompletionRequest.temperature "
     "of type float32"),
])
async def test_completion_errors(client, body, message):
    response = await client.post("/v1/completions", json=body)
    assert response.status == 400
    assert (await response.json())["error"] == {"message": message,
                                                "type": "invalid_request_error",
                                                "param": None, "code": None}


# -- /v1/models -----------------------------------------------------------------------------------

async def test_models_list_newest_first(aiohttp_client, settings, spawner):
    registry = FakeRegistry(resolved_model("old:1b", "01" * 32, seconds=1_600_000_000),
                            resolved_model("me/new:2b", "02" * 32, seconds=1_700_000_000))
    app = create_app(settings, registry=registry, scheduler=Scheduler(settings, spawner))
    client = await aiohttp_client(app)
    response = await client.get("/v1/models")
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"object": "list", "data": [
        {"id": "me/new:2b", "object": "model", "created": 1_700_000_000, "owned_by": "me"},
        {"id": "old:1b", "object": "model", "created": 1_600_000_000, "owned_by": "library"}]}


async def test_models_list_empty_is_null(aiohttp_client, settings, spawner):
    app = create_app(settings, registry=FakeRegistry(), scheduler=Scheduler(settings, spawner))
    client = await aiohttp_client(app)
    assert await (await client.get("/v1/models")).text() == '{"object":"list","data":null}\n'


async def test_model_retrieve_and_not_found(client):
    body = await (await client.get("/v1/models/smollm2:135m")).json()
    assert body == {"id": MODEL, "object": "model", "created": 1_700_000_000,
                    "owned_by": "library"}
    response = await client.get("/v1/models/nope")
    assert response.status == 404
    assert await response.json() == {"error": {"message": "model 'nope:latest' not found",
                                               "type": "not_found_error", "param": None,
                                               "code": None}}


# -- /v1/embeddings -------------------------------------------------------------------------------

async def test_embeddings_float(client, fake_embed):
    response = await client.post("/v1/embeddings", json={"model": MODEL, "input": ["a", "b"]})
    body = json.loads(await response.text())
    assert body == {"object": "list", "data": [
        {"object": "embedding", "embedding": [0.0, 0.6, 0.8], "index": 0},
        {"object": "embedding", "embedding": [0.0, 0.6, 0.8], "index": 1}],
        "model": MODEL, "usage": {"prompt_tokens": 4, "total_tokens": 4}}


async def test_embeddings_base64_and_dimensions(client):
    body = await (await client.post("/v1/embeddings", json={
        "model": MODEL, "input": "a", "encoding_format": "BASE64", "dimensions": 2})).json()
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.0, 1.0)


async def test_embeddings_empty_string_is_one_input(client, fake_embed):
    await client.post("/v1/embeddings", json={"model": MODEL, "input": ""})
    assert list(fake_embed[0].inputs) == [""]


@pytest.mark.parametrize("body,status,message,kind", [
    ({"model": MODEL}, 400, "invalid input", "invalid_request_error"),
    ({"model": MODEL, "input": []}, 400, "invalid input", "invalid_request_error"),
    ({"model": MODEL, "input": [[1, 2]]}, 400, "invalid input type", "invalid_request_error"),
    ({"model": MODEL, "input": "a", "encoding_format": "int8"}, 400,
     "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64'].",
     "invalid_request_error"),
    ({"model": "nope", "input": "a"}, 404, 'model "nope" not found, try pulling it first',
     "not_found_error"),
])
async def test_embeddings_errors(client, body, status, message, kind):
    response = await client.post("/v1/embeddings", json=body)
    assert response.status == status
    assert await response.json() == {"error": {"message": message, "type": kind,
                                               "param": None, "code": None}}


async def test_unknown_v1_path_is_plain_404(client):
    response = await client.get("/v1/nothing")
    assert (response.status, await response.text()) == (404, "404 page not found")
