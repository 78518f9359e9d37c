"""``logprobs``/``top_logprobs`` through real processes: Ollama's native shape on /api/generate
and /api/chat (streamed and not), OpenAI's on /v1, driven by the official clients."""

from __future__ import annotations

import math

import ollama
import openai
import pytest

from tests.e2e.server import CorralServer

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 7, "num_predict": 10}


def check_entries(entries: list, text: str, top: int) -> None:
    assert "".join(e["token"] for e in entries) == text
    for entry in entries:
        assert entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode("utf-8", "replace") == entry["token"]
        alternatives = entry.get("top_logprobs") or []
        assert len(alternatives) == top
        if top:  # greedy: the chosen token is the likeliest
            assert alternatives[0]["token"] == entry["token"]
            assert math.isclose(alternatives[0]["logprob"], entry["logprob"], abs_tol=1e-5)


def test_generate_returns_one_logprob_per_token(corral: CorralServer) -> None:
    status, body = corral.post("/api/generate", {
        "model": MODEL, "prompt": "1, 2, 3,", "raw": True, "stream": False, "logprobs": True,
        "top_logprobs": 3, "options": GREEDY})
    assert status == 200, body
    assert len(body["logprobs"]) == body["eval_count"] == 10
    check_entries(body["logprobs"], body["response"], 3)
    assert list(body)[-1] == "logprobs"


def test_streamed_chat_carries_the_logprobs_of_each_chunk(corral: CorralServer) -> None:
    lines = list(corral.stream("/api/chat", {
        "model": MODEL, "messages": [{"role": "user", "content": "Name a colour."}],
        "logprobs": True, "options": GREEDY}))
    text = "".join(line["message"]["content"] for line in lines)
    entries = [e for line in lines for e in line.get("logprobs", ())]
    check_entries(entries, text, 0)
    assert all("logprobs" not in line for line in lines if not line["message"]["content"]
               and not line["done"])


def test_without_logprobs_there_are_none(corral: CorralServer) -> None:
    status, body = corral.post("/api/generate", {
        "model": MODEL, "prompt": "1, 2, 3,", "raw": True, "stream": False, "options": GREEDY})
    assert status == 200 and "logprobs" not in body


def test_top_logprobs_out_of_range_is_a_400(corral: CorralServer) -> None:
    assert corral.post("/api/chat", {"model": MODEL, "messages": [], "top_logprobs": 21}) == (
        400, {"error": "top_logprobs must be between 0 and 20"})


def test_the_ollama_client_reads_them(corral: CorralServer) -> None:
    reply = ollama.Client(host=corral.url).generate(
        model=MODEL, prompt="1, 2, 3,", raw=True, logprobs=True, top_logprobs=2, options=GREEDY)
    assert len(reply.logprobs) == reply.eval_count
    assert reply.logprobs[0].top_logprobs[0].token == reply.logprobs[0].token


def test_openai_chat_and_completions_logprobs(corral: CorralServer) -> None:
    client = openai.OpenAI(base_url=corral.url + "/v1", api_key="corral", max_retries=0)
    ask = [{"role": "user", "content": "Name a colour."}]
    reply = client.chat.completions.create(model=MODEL, messages=ask, logprobs=True,
                                           top_logprobs=2, temperature=0, max_tokens=8)
    content = reply.choices[0].logprobs.content
    assert "".join(c.token for c in content) == reply.choices[0].message.content
    assert all(len(c.top_logprobs) == 2 for c in content)
    chunks = list(client.chat.completions.create(model=MODEL, messages=ask, logprobs=True,
                                                 temperature=0, max_tokens=8, stream=True))
    streamed = [c for chunk in chunks for choice in chunk.choices if choice.logprobs
                for c in choice.logprobs.content]
    assert [c.token for c in streamed] == [c.token for c in content]
    completion = client.completions.create(model=MODEL, prompt="1, 2, 3,", logprobs=2,
                                           temperature=0, max_tokens=6)
    assert len(completion.choices[0].logprobs.content) == completion.usage.completion_tokens
