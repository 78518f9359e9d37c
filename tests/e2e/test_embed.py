"""Embeddings end to end: ``/api/embed`` and ``/api/embeddings`` on the real SmolLM2 model, through
an embedding-mode runner."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
EMBEDDING_LENGTH = 576  # SmolLM2-135M's hidden size


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


def embed(corral, **body) -> dict:
    status, reply = corral.post("/api/embed", {"model": MODEL, **body})
    assert status == 200, reply
    return reply


def test_embed_vectors_have_norm_one(corral):
    reply = embed(corral, input="The sky is blue.")
    assert list(reply) == ["model", "embeddings", "total_duration", "load_duration",
                           "prompt_eval_count"]
    (vector,) = reply["embeddings"]
    assert len(vector) == EMBEDDING_LENGTH
    assert abs(norm(vector) - 1) < 1e-4
    assert reply["prompt_eval_count"] > 0 and reply["total_duration"] >= reply["load_duration"]


def test_batch_gives_one_vector_per_input_and_is_deterministic(corral):
    reply = embed(corral, input=["a red apple", "a green pear", "a red apple"])
    first, second, third = reply["embeddings"]
    assert len(first) == len(second) == len(third) == EMBEDDING_LENGTH
    assert all(abs(norm(v) - 1) < 1e-4 for v in (first, second, third))
    assert first == third and first != second
    assert embed(corral, input="a red apple")["embeddings"][0] == first


def test_similar_sentences_are_closer(corral):
    # Single words do not separate with this tiny chat model (mean pooling): sentences do.
    cat, kitten, spreadsheet = embed(corral, input=[
        "The cat sat on the mat.", "A kitten is sleeping on the rug.",
        "Quarterly revenue figures in the spreadsheet."])["embeddings"]
    assert cosine(cat, kitten) > cosine(cat, spreadsheet)


def test_dimensions_and_empty_input(corral):
    (vector,) = embed(corral, input="hello", dimensions=16)["embeddings"]
    assert len(vector) == 16 and abs(norm(vector) - 1) < 1e-4
    assert embed(corral, input=[]) == {"model": MODEL, "embeddings": []}


def test_truncation_against_num_ctx(corral):
    long_text = "hello " * 60
    small = {"num_ctx": 32}
    status, reply = corral.post("/api/embed", {"model": MODEL, "input": long_text,
                                               "truncate": False, "options": small})
    assert (status, reply) == (400, {"error": "the input length exceeds the context length"})
    reply = embed(corral, input=long_text, options=small)
    assert 0 < reply["prompt_eval_count"] <= 32
    assert abs(norm(reply["embeddings"][0]) - 1) < 1e-4


def test_legacy_embeddings_are_not_normalised(corral):
    status, legacy = corral.post("/api/embeddings", {"model": MODEL, "prompt": "The sky is blue."})
    assert status == 200 and list(legacy) == ["embedding"]
    assert len(legacy["embedding"]) == EMBEDDING_LENGTH
    assert abs(norm(legacy["embedding"]) - 1) > 1e-3
    (unit,) = embed(corral, input="The sky is blue.")["embeddings"]
    assert cosine(legacy["embedding"], unit) > 0.9999
    empty = corral.post("/api/embeddings", {"model": MODEL, "prompt": ""})
    assert empty == (200, {"embedding": []})


def test_embedding_runner_serves_beside_the_generation_runner(corral):
    status, _ = corral.post("/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False,
                                              "options": {"num_predict": 2}})
    assert status == 200
    embed(corral, input="still here")
    assert len(corral.runner_pids()) >= 2


@pytest.mark.parametrize("path,body,status,error", [
    ("/api/embed", {"model": "nope", "input": "x"}, 404,
     'model "nope" not found, try pulling it first'),
    ("/api/embed", {"model": "", "input": "x"}, 404, "model '' not found"),
    ("/api/embed", {"model": MODEL, "input": 3}, 400, "invalid input type"),
    ("/api/embeddings", {"model": "", "prompt": "x"}, 400, "model is required"),
    ("/api/embeddings", {"model": "nope", "prompt": "x"}, 404,
     'model "nope" not found, try pulling it first'),
])
def test_errors(corral, path, body, status, error):
    assert corral.post(path, body) == (status, {"error": error})
