"""``/api/embed`` and ``/api/embeddings`` through the real app, Scheduler and fake runners."""

from __future__ import annotations

import math

import pytest

from gateway.embeddings import normalized, shortest_float32
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.gateway.fakes import FakeRunnerClient, install_tokenizer

MODEL = "smollm2:135m"


@pytest.fixture(autouse=True)
def embed_calls(monkeypatch) -> list[tuple]:
    """Give fake runners ``Embed`` (input ``t`` becomes ``[3, 4, 0, len(t)]``, ``"nan"`` a NaN)
    and a character tokenizer that adds one BOS token."""
    calls: list[tuple] = []

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        calls.append((self.process.spec, request))
        vectors = [[3.0, 4.0, math.nan if text == "nan" else 0.0, float(len(text))]
                   for text in request.inputs]
        return pb.EmbedResponse(embeddings=[pb.Embedding(values=v) for v in vectors],
                                prompt_eval_count=sum(len(t.split()) for t in request.inputs))

    monkeypatch.setattr(FakeRunnerClient, "embed", embed, raising=False)
    install_tokenizer(monkeypatch)
    return calls


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


async def test_embed_string_gives_one_unit_vector(client, spawner, embed_calls):
    response = await client.post("/api/embed", json={"model": MODEL, "input": "hello world"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = await response.json()
    assert list(body) == ["model", "embeddings", "total_duration", "load_duration",
                          "prompt_eval_count"]
    assert body["model"] == MODEL and body["prompt_eval_count"] == 2
    (vector,) = body["embeddings"]
    assert abs(norm(vector) - 1) < 1e-6
    # float32 values in their shortest form, as Go encodes []float32
    assert '"embeddings":[[0.24828176,0.33104235,0.0,0.9103665]]' in await response.text()
    (spec, request), = embed_calls
    assert spec.embedding and "--embedding" in spec.argv()
    assert list(request.inputs) == ["hello world"] and request.truncate is True
    assert body["total_duration"] >= body["load_duration"] > 0


async def test_embed_list_keeps_order_and_counts_tokens(client):
    body = await (await client.post("/api/embed", json={
        "model": MODEL, "input": ["a", "bb cc", "a"]})).json()
    first, second, third = body["embeddings"]
    assert first == third != second and len(first) == 4
    assert body["prompt_eval_count"] == 4


@pytest.mark.parametrize("value", ["", [], None])
async def test_empty_input_loads_and_returns_no_vectors(client, spawner, embed_calls, value):
    body = {"model": MODEL} if value is None else {"model": MODEL, "input": value}
    response = await client.post("/api/embed", json=body)
    assert await response.json() == {"model": MODEL, "embeddings": []}
    (process,) = spawner.spawned
    assert process.spec.embedding and embed_calls == []


async def test_dimensions_cut_and_renormalise(client):
    body = await (await client.post("/api/embed", json={
        "model": MODEL, "input": "xyzw", "dimensions": 2})).json()
    assert body["embeddings"] == [[0.6, 0.8]]


async def test_the_request_num_ctx_and_truncate_reach_the_runner(client, embed_calls):
    """The runner cuts or refuses long inputs (tests/runner/test_embedding.py) against the
    request's num_ctx, which may be smaller than a shared runner's context."""
    small = {"num_ctx": 8}
    await client.post("/api/embed", json={
        "model": MODEL, "input": ["0123456789", "short"], "truncate": False, "options": small})
    await client.post("/api/embeddings", json={"model": MODEL, "prompt": "0123456789"})
    (_, first), (_, second) = embed_calls
    assert (first.num_ctx, first.truncate, list(first.inputs)) == (8, False, ["0123456789", "short"])
    assert second.truncate and second.num_ctx > 8


async def test_nan_is_an_error(client):
    response = await client.post("/api/embed", json={"model": MODEL, "input": "nan"})
    assert response.status == 500
    assert await response.json() == {"error": "embedding contains NaN or Inf values"}


@pytest.mark.parametrize("path,body,status,error", [
    ("/api/embed", {"model": MODEL, "input": 3}, 400, "invalid input type"),
    ("/api/embed", {"model": MODEL, "input": ["a", 1]}, 400, "invalid input type"),
    ("/api/embed", {"model": MODEL, "input": [[1, 2]]}, 400, "invalid input type"),
    ("/api/embed", {"model": "", "input": "x"}, 404, "model '' not found"),
    ("/api/embed", {"model": "nope", "input": "x"}, 404,
     'model "nope" not found, try pulling it first'),
    ("/api/embed", {"model": "bad name!", "input": "x"}, 400, "invalid model name"),
    ("/api/embed", {"model": MODEL, "input": "x", "dimensions": "2"}, 400,
     "json: cannot unmarshal string into Go struct field EmbedRequest.dimensions of type int"),
    ("/api/embed", {"model": MODEL, "input": "x", "truncate": "no"}, 400,
     "json: cannot unmarshal string into Go struct field EmbedRequest.truncate of type bool"),
    ("/api/embed", {"model": MODEL, "options": {"num_ctx": "big"}}, 400,
     'option "num_ctx" must be of type integer'),
    ("/api/embeddings", {"model": "", "prompt": "x"}, 400, "model is required"),
    ("/api/embeddings", {"model": "nope:1b", "prompt": "x"}, 404,
     'model "nope:1b" not found, try pulling it first'),
    ("/api/embeddings", {"model": MODEL, "prompt": ["x"]}, 400,
     "json: cannot unmarshal array into Go struct field EmbeddingRequest.prompt of type string"),
])
async def test_errors(client, path, body, status, error):
    response = await client.post(path, json=body)
    assert response.status == status
    assert await response.json() == {"error": error}


async def test_legacy_embeddings_is_not_normalised(client, embed_calls):
    response = await client.post("/api/embeddings", json={"model": MODEL, "prompt": "abc"})
    body = await response.json()
    assert body == {"embedding": [3.0, 4.0, 0.0, 3.0]}
    assert embed_calls[0][1].truncate is True
    body = await (await client.post("/api/embeddings", json={"model": MODEL, "prompt": ""})).json()
    assert body == {"embedding": []}


async def test_embedding_runner_is_separate_from_the_generation_runner(client, spawner):
    await client.post("/api/generate", json={"model": MODEL, "prompt": "hi", "stream": False})
    await client.post("/api/embed", json={"model": MODEL, "input": "hi"})
    await client.post("/api/embed", json={"model": MODEL, "input": "again"})
    assert [p.spec.embedding for p in spawner.spawned] == [False, True]
    assert "--embedding" not in spawner.spawned[0].spec.argv()
    ps = await (await client.get("/api/ps")).json()
    assert [m["name"] for m in ps["models"]] == [MODEL, MODEL]


async def test_embed_num_ctx_option_sizes_the_runner(client, spawner):
    await client.post("/api/embed", json={"model": MODEL, "input": "x",
                                          "options": {"num_ctx": 512}})
    assert spawner.spawned[0].spec.ctx_size == 512


def test_normalized_and_shortest_float32():
    assert normalized([3.0, 4.0]) == [0.6, 0.8]
    assert normalized([0.0, 0.0]) == [0.0, 0.0]  # no division by zero
    assert normalized([1.0, 2.0, 2.0], dimensions=5) == normalized([1.0, 2.0, 2.0])
    assert repr(shortest_float32(0.010071028955280781)) == "0.010071029"
    assert shortest_float32(0.5) == 0.5
