"""Every option of Ollama's option table, and every OpenAI spelling of one, through the real runner.

Each option is sent with a typical value next to a temperature > 0 (so every sampler stage is
built: top-k, typical, top-p, min-p, temperature, penalties, dist) and must come back 200: a
llama-cpp-python release that changes a sampler's C signature fails here, not in production.
"""

from __future__ import annotations

import json

import pytest

from services.options_table import OPTIONS, is_current

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
BASE = {"temperature": 0.7, "num_predict": 3}
# A typical working value for each current option (num_ctx below the server's 2048 shares the
# loaded runner instead of reloading it).
TYPICAL = {
    "num_ctx": 1024, "num_batch": 256, "num_gpu": 0, "main_gpu": 0, "use_mmap": True,
    "use_mlock": False,
    "num_thread": 2, "num_keep": 8, "seed": 42, "num_predict": 2, "top_k": 20, "top_p": 0.8,
    "min_p": 0.05, "typical_p": 0.9, "repeat_last_n": 32, "temperature": 0.9,
    "repeat_penalty": 1.1, "presence_penalty": 0.5, "frequency_penalty": 0.5, "stop": ["\n\n"],
    "draft_num_predict": 2,
}


def test_every_current_option_has_a_typical_value():
    assert set(TYPICAL) == {name for name in OPTIONS if is_current(name)}


def generate(corral, **options) -> dict:
    status, body = corral.post("/api/generate", {
        "model": MODEL, "prompt": "Name a fruit.", "stream": False, "options": options})
    assert status == 200, body
    assert body["done"] and body["eval_count"] >= 1
    return body


@pytest.mark.parametrize("name", sorted(TYPICAL))
def test_each_option_through_generate(corral, name):
    body = generate(corral, **{**BASE, name: TYPICAL[name]})
    if name == "num_predict":
        assert (body["eval_count"], body["done_reason"]) == (2, "length")


@pytest.mark.parametrize("name", ["repeat_penalty", "presence_penalty", "frequency_penalty",
                                  "top_k", "top_p", "min_p", "typical_p", "seed"])
def test_sampler_options_through_chat(corral, name):
    status, body = corral.post("/api/chat", {
        "model": MODEL, "messages": [{"role": "user", "content": "Name a fruit."}],
        "stream": False, "options": {**BASE, name: TYPICAL[name]}})
    assert status == 200 and body["done"], body


def test_all_options_at_once_and_the_same_seed_gives_the_same_text(corral):
    first = generate(corral, **{**TYPICAL, "num_predict": 6, "stop": []})
    second = generate(corral, **{**TYPICAL, "num_predict": 6, "stop": []})
    assert first["response"] == second["response"]


def test_a_seed_is_used_mod_2_to_the_32(corral):
    options = {"temperature": 1.0, "num_predict": 8}
    small = generate(corral, **options, seed=7)
    wrapped = generate(corral, **options, seed=2**32 + 7)
    assert small["response"] == wrapped["response"]


def test_a_model_created_with_every_parameter_generates(corral):
    name = "i12-every-parameter"
    status, body = corral.post("/api/create", {
        "model": name, "from": MODEL, "parameters": {**TYPICAL, "num_predict": 3},
        "stream": False})
    assert status == 200, body
    try:
        status, shown = corral.post("/api/show", {"model": name})
        assert status == 200 and "repeat_penalty" in shown["parameters"]
        status, body = corral.post("/api/generate", {"model": name, "prompt": "Hi",
                                                     "stream": False})
        assert status == 200 and body["done"], body
    finally:
        corral.request("DELETE", "/api/delete", {"model": name})


# -- the OpenAI spellings ------------------------------------------------------------------------

USER = [{"role": "user", "content": "Name a fruit."}]


@pytest.mark.parametrize("fields", [
    {"temperature": 0.7}, {"top_p": 0.8}, {"max_tokens": 2}, {"max_completion_tokens": 2},
    {"seed": 42}, {"stop": "\n\n"}, {"stop": ["\n\n", "."]}, {"frequency_penalty": 0.5},
    {"presence_penalty": 0.5}, {"response_format": {"type": "json_object"}},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": {
        "type": "object", "properties": {"fruit": {"type": "string"}}}}}},
    {"logprobs": True, "top_logprobs": 2}, {"reasoning_effort": "none"},
], ids=lambda fields: "+".join(fields))
def test_chat_completions_fields(corral, fields):
    status, body = corral.post("/v1/chat/completions", {
        "model": MODEL, "messages": USER, "max_tokens": 3, **fields})
    assert status == 200, body
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] >= 1


@pytest.mark.parametrize("fields", [
    {"temperature": 0.7}, {"top_p": 0.8}, {"max_tokens": 2}, {"seed": 42}, {"stop": "\n"},
    {"stop": ["\n", "."]}, {"frequency_penalty": 0.5}, {"presence_penalty": 0.5},
    {"logprobs": 2},
], ids=lambda fields: "+".join(fields))
def test_completions_fields(corral, fields):
    status, body = corral.post("/v1/completions", {
        "model": MODEL, "prompt": "Apples and", "max_tokens": 3, **fields})
    assert status == 200, body
    assert body["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize("fields", [{"temperature": 0.7}, {"top_p": 0.8},
                                    {"max_output_tokens": 2}],
                         ids=lambda fields: "+".join(fields))
def test_responses_fields(corral, fields):
    status, body = corral.post("/v1/responses", {
        "model": MODEL, "input": "Name a fruit.", "max_output_tokens": 3, **fields})
    assert status == 200, body
    assert body["status"] in ("completed", "incomplete")  # incomplete: max_output_tokens


def test_embeddings_dimensions(corral):
    status, body = corral.post("/v1/embeddings", {"model": MODEL, "input": ["a", "b"],
                                                  "dimensions": 8})
    assert status == 200, body
    assert [len(item["embedding"]) for item in body["data"]] == [8, 8]
    status, raw, _ = corral.request("POST", "/api/embed", {
        "model": MODEL, "input": "a", "options": {"num_ctx": 512}, "truncate": True})
    assert status == 200 and json.loads(raw)["embeddings"]
