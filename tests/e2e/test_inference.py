"""Issue 4 end to end: prompt rendering and generation parity through real ``corral serve``.

Structured output, tool calls through a Modelfile Go TEMPLATE, thinking capability checks,
fill-in-the-middle, stop/length, client disconnects, context overflow, and the compatibility
traps of ollama-api.md §9. Where a trap is pinned elsewhere the test is named here:
trap 10 (copy/delete bodies, blob 201/200) and 12 (show parameters quoting) in test_models.py,
trap 11 (Modelfile lexing) in tests/services/test_modelfile.py, trap 13 (plain-text 404/405) in
test_api.py, trap 14 (mid-stream error line) in test_supervision.py; traps 7 and 8 are /v1
(tests/gateway/test_openai*.py).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time

import jsonschema
import pytest

from tests.e2e.server import CorralServer
from tests.e2e.model_helpers import TOOLS_TEMPLATE, created

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
FULL = "registry.ollama.ai/library/smollm2:135m"
PERSON = {"type": "object", "required": ["name", "age", "color"], "properties": {
    "name": {"type": "string", "maxLength": 24},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "color": {"enum": ["red", "green", "blue"]}}}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string", "description": "The city"}}}}}
TOOL_CALL = {"type": "object", "required": ["name", "arguments"], "properties": {
    "name": {"enum": ["get_weather"]},
    "arguments": {"type": "object", "required": ["city"],
                  "properties": {"city": {"type": "string", "maxLength": 20}}}}}
FIM_TEMPLATE = ("{{ if .Suffix }}<|im_start|>user\nFill in the middle.\nBEFORE: {{ .Prompt }}\n"
                "AFTER: {{ .Suffix }}<|im_end|>\n<|im_start|>assistant\n{{ else }}{{ .Prompt }}"
                "{{ end }}")


def error(server: CorralServer, path: str, body: dict) -> tuple[int, str]:
    status, raw, _ = server.request("POST", path, body)
    return status, json.loads(raw).get("error", "")


# -- structured output and tools ------------------------------------------------------------------

def test_json_schema_format_validates_20_times_out_of_20(corral):
    question = [{"role": "user", "content": "Describe a person as JSON: name, age, colour."}]
    for seed in range(20):
        status, body = corral.post("/api/chat", {
            "model": MODEL, "messages": question, "format": PERSON, "stream": False,
            "options": {"seed": seed, "temperature": 0.8, "num_predict": 96}})
        assert status == 200, body
        jsonschema.validate(json.loads(body["message"]["content"]), PERSON)
    status, body = corral.post("/api/generate", {
        "model": MODEL, "prompt": "Give me a JSON object about cats.", "format": "json",
        "stream": False, "options": {"seed": 3, "temperature": 0.5, "num_predict": 64}})
    if body["done_reason"] == "stop":
        assert isinstance(json.loads(body["response"]), dict)
    assert body["response"].lstrip().startswith("{")


def test_tool_call_forced_through_a_template_and_a_schema(corral):
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    with created(corral, "smol-tools", template=TOOLS_TEMPLATE) as name:
        request = {"model": name, "messages": question, "tools": [WEATHER_TOOL],
                   "format": TOOL_CALL, "options": {"temperature": 0, "num_predict": 64}}
        status, body = corral.post("/api/chat", {**request, "stream": False})
        assert status == 200, body
        (call,) = body["message"]["tool_calls"]
        assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
        assert call["function"]["name"] == "get_weather" and call["function"]["index"] == 0
        assert isinstance(call["function"]["arguments"], dict)
        assert isinstance(call["function"]["arguments"]["city"], str)
        assert body["message"]["content"] == ""
        streamed = [c for line in corral.stream("/api/chat", request)
                    for c in line["message"].get("tool_calls", [])]
        assert [c["function"] for c in streamed] == [call["function"]]


# -- capabilities and request checks ------------------------------------------------------------

@pytest.mark.parametrize("path,body,expected", [
    ("/api/generate", {"prompt": "Hi", "think": True}, '"smollm2:135m" does not support thinking'),
    ("/api/chat", {"messages": [{"role": "user", "content": "Hi"}], "think": "low"},
     '"smollm2:135m" does not support thinking'),
    ("/api/chat", {"messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER_TOOL]},
     f"{FULL} does not support tools"),
    ("/api/generate", {"prompt": "def f(", "suffix": "return 1"},
     f"{FULL} does not support insert"),
    ("/api/generate", {"prompt": "What is this?", "images": ["aGVsbG8="]},
     f"{FULL} does not support vision"),
    ("/api/generate", {"prompt": "x", "images": ["data:image/png;base64,aGVsbG8="]},
     "illegal base64 data at input byte 4"),
    ("/api/generate", {"prompt": "x", "raw": True, "template": "{{ .Prompt }}"},
     "raw mode does not support template, system, or context"),
    ("/api/generate", {"prompt": "x", "template": "{{ if .Prompt }}"},
     "template: :1: unexpected EOF in if"),
])
def test_requests_the_model_cannot_serve_are_400(corral, path, body, expected):
    assert error(corral, path, {"model": MODEL, **body}) == (400, expected)


def test_think_false_is_always_accepted(corral):
    status, body = corral.post("/api/chat", {
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "think": False,
        "stream": False, "options": {"num_predict": 2}})
    assert status == 200 and "thinking" not in body["message"]


def test_template_override_and_fill_in_the_middle(corral):
    status, body = corral.post("/api/generate", {
        "model": MODEL, "prompt": "Paris", "system": "Be brief.", "stream": False,
        "template": "<|im_start|>system\n{{ .System }}<|im_end|>\n<|im_start|>user\n"
                    "Capital of France? {{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n",
        "_debug_render_only": True})
    assert status == 200 and body["_debug_info"]["rendered_template"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCapital of France? Paris"
        "<|im_end|>\n<|im_start|>assistant\n")
    with created(corral, "smol-fim", template=FIM_TEMPLATE) as name:
        fim = {"model": name, "prompt": "def add(a, b):", "suffix": "    return c",
               "stream": False, "options": {"temperature": 0, "num_predict": 8}}
        status, body = corral.post("/api/generate", {**fim, "_debug_render_only": True})
        assert "BEFORE: def add(a, b):\nAFTER:     return c" in body["_debug_info"][
            "rendered_template"]
        status, body = corral.post("/api/generate", fim)
        assert status == 200 and body["done"] is True and body["eval_count"] > 0


def test_raw_prompt_reaches_the_model_verbatim(corral):
    options = {"temperature": 0, "seed": 1, "num_predict": 12}
    templated = corral.post("/api/generate", {"model": MODEL, "prompt": "Name a fruit.",
                                              "system": "Be brief.", "stream": False,
                                              "options": options})[1]
    raw = corral.post("/api/generate", {
        "model": MODEL, "raw": True, "stream": False, "options": options,
        "prompt": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a fruit."
                  "<|im_end|>\n<|im_start|>assistant\n"})[1]
    assert raw["response"] == templated["response"] and "context" not in raw
    assert templated["context"]


# -- stop, length, disconnects, context overflow ---------------------------------------------------

def test_stop_sequences_never_leak_while_streaming(corral):
    request = {"model": MODEL, "prompt": "Count from 1 to 20, separated by commas.",
               "options": {"temperature": 0, "num_predict": 48}}
    full = corral.post("/api/generate", {**request, "stream": False})[1]["response"]
    stop = ", 7" if ", 7" in full else full[len(full) // 2:len(full) // 2 + 3]
    lines = list(corral.stream("/api/generate", {
        **request, "options": {**request["options"], "stop": [stop]}}))
    text = "".join(line["response"] for line in lines)
    assert stop not in text and text == full[:full.index(stop)]
    assert lines[-1]["done_reason"] == "stop"


def test_num_predict_ends_chat_with_length(corral):
    status, body = corral.post("/api/chat", {
        "model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}],
        "stream": False, "options": {"temperature": 0, "num_predict": 3}})
    assert (body["done_reason"], body["eval_count"]) == ("length", 3)


def test_client_disconnect_stops_generation(corral):
    cancelled_before = len(corral.log_events("generation_cancelled"))
    conn = http.client.HTTPConnection("127.0.0.1", corral.port, timeout=120)
    conn.request("POST", "/api/generate", json.dumps({
        "model": MODEL, "prompt": "Write a very long story about the sea.",
        "options": {"temperature": 0.8, "seed": 5, "num_predict": 4000}}))
    response = conn.getresponse()
    assert json.loads(response.readline())["done"] is False
    assert json.loads(response.readline())["done"] is False
    conn.sock.shutdown(socket.SHUT_RDWR)
    response.close()
    conn.close()
    deadline = time.monotonic() + 60
    while len(corral.log_events("generation_cancelled")) == cancelled_before:
        assert time.monotonic() < deadline, "the runner kept generating for a gone client"
        time.sleep(0.2)
    cancelled = corral.log_events("generation_cancelled")[-1]
    assert cancelled["eval_count"] < 4000
    status, body = corral.post("/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False,
                                                 "options": {"num_predict": 2}})
    assert status == 200 and body["done"] is True  # the single slot is free again


def test_long_chat_drops_oldest_messages_and_says_so(corral):
    messages = []
    for i in range(12):
        messages += [{"role": "user", "content": f"Fact {i}: " + "the sky is blue " * 12},
                     {"role": "assistant", "content": "Noted."}]
    messages.append({"role": "user", "content": "What colour is the sky?"})
    before = len(corral.log_events("prompt_truncated"))
    status, body = corral.post("/api/chat", {
        "model": MODEL, "messages": messages, "stream": False,
        "options": {"num_ctx": 256, "num_predict": 2, "temperature": 0}})
    assert status == 200 and body["done"] is True
    assert body["prompt_eval_count"] < 256
    (report,) = corral.log_events("prompt_truncated")[before:]
    assert report["dropped_messages"] > 0 and report["num_ctx"] == 256


def test_long_raw_prompt_keeps_num_keep_or_is_refused_without_truncate(corral):
    text = "alpha beta gamma delta " * 150
    request = {"model": MODEL, "prompt": text, "raw": True, "stream": False,
               "options": {"num_ctx": 256, "num_predict": 2, "num_keep": 8}}
    status, body = corral.post("/api/generate", request)
    assert status == 200 and body["prompt_eval_count"] < 256
    too_long = error(corral, "/api/generate", {**request, "truncate": False})
    assert too_long == (400, "the prompt is longer than the context length currently available "
                             "to the model; shorten the prompt, adjust the context length in "
                             "settings, or use a model with a longer context length")
    assert error(corral, "/api/chat", {  # Ollama >= 0.30.9: no shift, no trimming: a 400
        "model": MODEL, "messages": [{"role": "user", "content": text}], "shift": False,
        "stream": False, "options": request["options"]}) == too_long


# -- compatibility traps (ollama-api.md §9) -------------------------------------------------------

def test_trap_01_load_and_unload_are_single_objects_even_when_streaming(corral):
    for path, body in (("/api/generate", {}), ("/api/chat", {"messages": []})):
        status, raw, headers = corral.request("POST", path,
                                              {"model": MODEL, "stream": True, **body})
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(raw)["done_reason"] == "load"
    status, raw, _ = corral.request("POST", "/api/generate", {"model": MODEL, "keep_alive": 0})
    reply = json.loads(raw)
    assert (reply["done"], reply["done_reason"], reply["response"]) == (True, "unload", "")


@pytest.mark.parametrize("path,body,expected", [
    ("/api/generate", {"model": "nope-x", "prompt": "x"}, (404, "model 'nope-x' not found")),
    ("/api/chat", {"model": "nope-x", "messages": []}, (404, "model 'nope-x' not found")),
    ("/api/embed", {"model": "nope-x", "input": "x"},
     (404, 'model "nope-x" not found, try pulling it first')),
    ("/api/show", {"model": "nope-x"}, (404, "model 'nope-x:latest' not found")),
    ("/api/copy", {"source": "nope-x", "destination": "y"}, (404, 'model "nope-x" not found')),
    ("/api/generate", {"model": "", "prompt": "x"}, (404, "model '' not found")),
    ("/api/embed", {"model": "", "input": "x"}, (404, "model '' not found")),
    ("/api/chat", {"model": "", "messages": []}, (400, "model is required")),
    ("/api/embeddings", {"model": "", "prompt": "x"}, (400, "model is required")),
])
def test_traps_02_03_not_found_and_empty_model_wording(corral, path, body, expected):
    assert error(corral, path, body) == expected


def test_trap_04_keep_alive_forms(corral):
    assert error(corral, "/api/generate", {"model": MODEL, "keep_alive": "10"}) == (
        400, 'time: missing unit in duration "10"')
    def latest_expiry_year() -> int:
        return max(int(m["expires_at"][:4]) for m in corral.get("/api/ps")["models"])

    assert corral.post("/api/generate", {"model": MODEL, "keep_alive": -1})[0] == 200
    assert latest_expiry_year() > 2200  # negative = forever
    assert corral.post("/api/generate", {"model": MODEL, "keep_alive": 600})[0] == 200
    assert latest_expiry_year() < 2200  # a number is seconds
    assert corral.post("/api/generate", {"model": MODEL, "keep_alive": "5m"})[0] == 200


def test_trap_05_format_is_json_or_an_object(corral):
    for bad in ("xml", 1, ["json"]):
        status, message = error(corral, "/api/generate", {"model": MODEL, "prompt": "x",
                                                          "format": bad})
        assert status == 400 and message.startswith("invalid format: ") and message.endswith(
            '; expected "json" or a valid JSON Schema object')
    for unset in (None, ""):
        assert corral.post("/api/generate", {"model": MODEL, "prompt": "Hi", "format": unset,
                                             "stream": False, "options": {"num_predict": 1}}
                           )[0] == 200


def test_trap_06_options_stop_must_be_a_list_unknown_keys_ignored(corral):
    assert error(corral, "/api/generate", {"model": MODEL, "prompt": "x",
                                           "options": {"stop": "x"}}) == (
        400, 'option "stop" must be of type array')
    status, body = corral.post("/api/generate", {
        "model": MODEL, "prompt": "Hi", "stream": False,
        "options": {"num_predict": 1, "no_such_option": True, "mirostat": 1, "seed": None}})
    assert status == 200 and body["done"] is True


def test_trap_09_digests_have_no_prefix(corral):
    corral.post("/api/generate", {"model": MODEL})
    for listing in (corral.get("/api/tags"), corral.get("/api/ps")):
        assert all(re.fullmatch(r"[0-9a-f]{64}", m["digest"]) for m in listing["models"])


def test_trap_15_thinking_checks(corral):
    assert error(corral, "/api/generate", {"model": MODEL, "prompt": "x", "think": "max"}) == (
        400, '"smollm2:135m" does not support thinking')
    assert error(corral, "/api/generate", {"model": MODEL, "prompt": "x", "think": "huge"}) == (
        400, 'invalid think value: "huge" (must be "high", "medium", "low", "max", true, or false)')
    assert corral.post("/api/generate", {"model": MODEL, "prompt": "Hi", "think": False,
                                         "stream": False, "options": {"num_predict": 1}})[0] == 200
