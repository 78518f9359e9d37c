"""Issue 2 end to end: the Ollama API slice served by real processes and the real SmolLM2 model."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 24}
FINAL_FIELDS = {"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_root_and_version(corral):
    status, body, headers = corral.request("GET", "/")
    assert (status, body) == (200, b"Ollama is running")
    assert corral.request("HEAD", "/")[0] == 200
    assert re.fullmatch(r"\d+\.\d+\.\d+", corral.get("/api/version")["version"])


def test_tags_lists_embedded_model(corral):
    (model,) = corral.get("/api/tags")["models"]
    assert model["name"] == model["model"] == MODEL
    assert re.fullmatch(r"[0-9a-f]{64}", model["digest"])
    assert model["size"] > 90_000_000
    assert model["details"]["format"] == "gguf"
    assert model["details"]["family"] == "llama"
    assert model["details"]["quantization_level"] == "Q4_1"
    assert set(model["details"]) >= {"parent_model", "format", "family", "families",
                                     "parameter_size", "quantization_level"}


def test_generate_streams_ndjson_then_final_object(corral):
    lines = list(corral.stream("/api/generate", {"model": MODEL, "prompt": "Say hello.",
                                                 "options": GREEDY}))
    *chunks, final = lines
    assert chunks and all(c["done"] is False and isinstance(c["response"], str) for c in chunks)
    assert all(c["model"] == MODEL and RFC3339_UTC.match(c["created_at"]) for c in lines)
    assert final["done"] is True and final["done_reason"] in ("stop", "length")
    assert FINAL_FIELDS <= set(final)
    assert final["eval_count"] <= GREEDY["num_predict"]
    assert final["context"] and all(isinstance(t, int) for t in final["context"])
    assert "".join(c["response"] for c in chunks).strip()


def test_generate_non_stream_and_length_limit(corral):
    status, body = corral.post("/api/generate", {"model": MODEL, "prompt": "Count to fifty.",
                                                 "stream": False,
                                                 "options": {**GREEDY, "num_predict": 5}})
    assert status == 200
    assert body["done"] is True and body["done_reason"] == "length"
    assert body["eval_count"] == 5 and body["response"]
    assert FINAL_FIELDS <= set(body)


def test_same_seed_same_text(corral):
    request = {"model": MODEL, "prompt": "Write a short poem about rivers.", "stream": False,
               "options": {"temperature": 0.9, "seed": 7, "num_predict": 32}}
    first = corral.post("/api/generate", request)[1]["response"]
    second = corral.post("/api/generate", request)[1]["response"]
    assert first == second and first


def test_stop_sequence_never_leaks(corral):
    status, body = corral.post("/api/generate", {
        "model": MODEL, "prompt": "List the numbers from 1 to 10 separated by commas.",
        "stream": False, "options": {"temperature": 0, "num_predict": 40, "stop": ["5"]}})
    assert status == 200 and "5" not in body["response"]


def test_system_prompt_reaches_the_model(corral):
    base = {"model": MODEL, "prompt": "Who are you?", "stream": False,
            "options": {"temperature": 0, "num_predict": 8}}
    plain = corral.post("/api/generate", base)[1]
    pirate = corral.post("/api/generate", {**base, "system": "You are a pirate named Redbeard."})[1]
    assert pirate["prompt_eval_count"] > plain["prompt_eval_count"] or \
        pirate["response"] != plain["response"]


def test_chat_stream_and_non_stream(corral):
    messages = [{"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": "What is the capital of France?"}]
    lines = list(corral.stream("/api/chat", {"model": MODEL, "messages": messages,
                                             "options": GREEDY}))
    *chunks, final = lines
    assert all(c["message"]["role"] == "assistant" and not c["done"] for c in chunks)
    assert final["done"] and final["done_reason"] in ("stop", "length") and "context" not in final
    assert FINAL_FIELDS <= set(final)
    streamed = "".join(c["message"]["content"] for c in chunks)
    status, body = corral.post("/api/chat", {"model": MODEL, "messages": messages,
                                             "options": GREEDY, "stream": False})
    assert status == 200 and body["message"]["content"] == streamed and streamed.strip()


def test_chat_multi_turn(corral):
    messages = [{"role": "user", "content": "My name is Ada."},
                {"role": "assistant", "content": "Nice to meet you, Ada!"},
                {"role": "user", "content": "What is my name?"}]
    status, body = corral.post("/api/chat", {"model": MODEL, "messages": messages,
                                             "stream": False, "options": GREEDY})
    assert status == 200 and "ada" in body["message"]["content"].lower()


def test_generate_context_continuation(corral):
    first = corral.post("/api/generate", {"model": MODEL, "prompt": "Remember the word: banana.",
                                          "stream": False, "options": GREEDY})[1]
    second = corral.post("/api/generate", {"model": MODEL, "prompt": "Repeat the word.",
                                           "context": first["context"], "stream": False,
                                           "options": GREEDY})[1]
    assert len(second["context"]) > len(first["context"])


def test_load_only_request(corral):
    status, body = corral.post("/api/generate", {"model": MODEL})
    assert status == 200 and body["done"] is True and body["done_reason"] == "load"
    assert body["response"] == ""


def test_ps_shows_loaded_runner(corral):
    corral.post("/api/generate", {"model": MODEL})
    # other modules sharing this server may have left runners loaded (other models, or this
    # one with other options)
    loaded = next(m for m in corral.get("/api/ps")["models"] if m["name"] == MODEL)
    assert loaded["name"] == loaded["model"] == MODEL
    assert loaded["size"] > 0 and re.fullmatch(r"[0-9a-f]{64}", loaded["digest"])
    assert loaded["details"]["family"] == "llama" and loaded["expires_at"]


@pytest.mark.parametrize("path,body,status,error", [
    ("/api/generate", {"model": "nope:1b", "prompt": "hi"}, 404, "model 'nope:1b' not found"),
    ("/api/chat", {"model": "nope", "messages": []}, 404, "model 'nope' not found"),
    ("/api/generate", {"model": "", "prompt": "hi"}, 404, "model '' not found"),
    ("/api/chat", {"model": "", "messages": []}, 400, "model is required"),
    ("/api/generate", {"model": "bad name!", "prompt": "hi"}, 400, "invalid model name"),
    ("/api/generate", {"model": MODEL, "prompt": "hi", "options": {"stop": "x"}}, 400, None),
    ("/api/generate", {"model": MODEL, "prompt": "hi", "keep_alive": "10"}, 400,
     'time: missing unit in duration "10"'),
])
def test_errors_have_ollama_shape(corral, path, body, status, error):
    code, raw, headers = corral.request("POST", path, body)
    payload = json.loads(raw)
    assert code == status and list(payload) == ["error"]
    assert headers["Content-Type"].startswith("application/json")
    if error:
        assert payload["error"] == error


def test_malformed_json_and_missing_body(corral):
    code, raw, _ = corral.request("POST", "/api/generate", raw=b"{not json")
    assert code == 400 and json.loads(raw)["error"]
    code, raw, _ = corral.request("POST", "/api/chat", raw=b"")
    assert code == 400 and json.loads(raw) == {"error": "missing request body"}


def test_unknown_path_and_wrong_method_are_plain_text(corral):
    assert corral.request("GET", "/api/nothing")[:2] == (404, b"404 page not found")
    assert corral.request("GET", "/api/generate")[:2] == (405, b"405 method not allowed")
