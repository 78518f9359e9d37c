"""Hundreds of malformed bodies and out-of-range values, generated from a table, against a real
``corral serve``: each must be a 400 in Ollama's (or OpenAI's) error shape with no internal
detail, and the server must be healthy afterwards.

The table below is written from Ollama's API reference, not from the gateway's own field specs,
so a field the validation layer forgets shows up here as a failure.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
LEAKS = ("Traceback", "<class", "Errno", ".sock", "unix:", 'File "', "site-packages",
         "object has no attribute", "takes at least", "too large to convert")

# Bad values per kind of field (each must be refused whatever the rest of the body says).
BAD = {
    "string": [1, True, 1.5, [], {}],
    "bool": ["true", 1, [], {}],
    "int": ["1", 1.5, True, [], {}, 2**63],
    "int32": ["1", 1.5, True, [], 2**31, -(2**31) - 1, 1e12],
    "float": ["0.5", True, [], {}, 1e39, -1e39],
    "object": ["x", 1, True, []],
    "strings": ["x", 1, {}, [1], [None], [True], [[]]],
    "tokens": ["x", {}, ["1"], [None], [1.5], [2**31], [2**40], [True]],
    "images": ["x", {}, [1], [None], ["!!"], ["data:image/png;base64,aGk="]],
    "messages": ["x", {}, [1], [None], [{"role": 1}], [{"content": []}],
                 [{"role": "user", "images": "x"}], [{"role": "user", "images": [1]}],
                 [{"role": "user", "images": ["!!"]}], [{"role": "user", "tool_calls": "x"}],
                 [{"role": "user", "tool_calls": [None]}],
                 [{"role": "user", "tool_calls": [{"function": 1}]}],
                 [{"role": "user", "tool_calls": [{"function": {"arguments": "x"}}]}],
                 [{"role": "user", "content": "x"}] * 10_001],
    "openai_messages": ["x", {}, [1], [None], [{"role": 1, "content": "x"}],
                        [{"role": "user", "content": 1}], [{"role": "user", "content": [1]}],
                        [{"role": "user", "content": [{"type": "image_url",
                                                       "image_url": "http://x/y.png"}]}],
                        [{"role": "user", "tool_calls": "x"}],
                        [{"role": "user", "content": "x"}] * 10_001],
    "tools": ["x", {}, [1], [None], [{"function": 1}], [{"function": {"parameters": "x"}}],
              [{"type": 1}]],
    "duration": [True, [], {}, "10", "5x", "", "99999999999h", "-99999999999h", 1e20, 2**64],
    "think": ["ultra", "", 1, [], {}],
    "format": ["xml", 1, True, []],
    "options": ["x", 1, [], True],
    "input": [1, True, {}, [1], [None], [["a"]], ["x"] * 3000],
    "license": [1, True, {}, [1], [None]],
    "files": ["x", 1, [], {"a.gguf": 1}, {"a.gguf": None}, {"a.gguf": []}],
    "parameters": ["x", 1, [], {"temperature": "hot"}, {"top_k": 1e12}, {"seed": 2**70},
                   {"stop": "x"}, {"stop": [1]}, {"custom": {"a": 1}}, {"temperature": 1e39},
                   {"num_predict": 2**31}],
    "create_messages": ["x", [1], [None], [{"role": 1}], [{"content": {}}]],
}
# Out-of-range or mistyped values for each option of Ollama's table (sent as request options).
BAD_OPTIONS = {
    **{name: ["1", True, [], 2**31, -(2**31) - 1, 1e12]
       for name in ("num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread", "num_keep",
                    "num_predict", "top_k", "repeat_last_n", "draft_num_predict")},
    "seed": ["1", True, [], 2**63, 2**70, -(2**63) - 1],
    **{name: ["0.5", True, [], {}, 1e39, -1e39]
       for name in ("top_p", "min_p", "typical_p", "temperature", "repeat_penalty",
                    "presence_penalty", "frequency_penalty")},
    "use_mmap": ["true", 1, []],
    "stop": ["x", 1, [1], [None], {}],
}

GENERATE = {"model": "string", "prompt": "string", "suffix": "string", "system": "string",
            "template": "string", "context": "tokens", "stream": "bool", "raw": "bool",
            "format": "format", "keep_alive": "duration", "images": "images",
            "options": "options", "think": "think", "truncate": "bool", "shift": "bool",
            "logprobs": "bool", "top_logprobs": "int", "_debug_render_only": "bool"}
CHAT = {"model": "string", "messages": "messages", "stream": "bool", "format": "format",
        "keep_alive": "duration", "tools": "tools", "options": "options", "think": "think",
        "truncate": "bool", "shift": "bool", "logprobs": "bool", "top_logprobs": "int",
        "_debug_render_only": "bool"}
NAMED = {"model": "string", "name": "string"}
TRANSFER = {**NAMED, "insecure": "bool", "stream": "bool", "username": "string",
            "password": "string"}

# (method, path, a valid body, field kinds); every bad value replaces one field of the body.
ENDPOINTS = [
    ("POST", "/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}, GENERATE),
    ("POST", "/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                           "stream": False}, CHAT),
    ("POST", "/api/embed", {"model": MODEL, "input": "hi"},
     {"model": "string", "input": "input", "truncate": "bool", "dimensions": "int",
      "keep_alive": "duration", "options": "options"}),
    ("POST", "/api/embeddings", {"model": MODEL, "prompt": "hi"},
     {"model": "string", "prompt": "string", "keep_alive": "duration", "options": "options"}),
    ("POST", "/api/create", {"model": "i12-bad-create", "from": MODEL, "stream": False},
     {**NAMED, "from": "string", "files": "files", "adapters": "files", "template": "string",
      "system": "string", "license": "license", "parameters": "parameters",
      "messages": "create_messages", "quantize": "string", "stream": "bool"}),
    ("POST", "/api/show", {"model": MODEL},
     {**NAMED, "system": "string", "verbose": "bool", "options": "object"}),
    ("POST", "/api/copy", {"source": MODEL, "destination": "i12-bad-copy"},
     {"source": "string", "destination": "string"}),
    ("DELETE", "/api/delete", {"model": "i12-no-such-model"}, NAMED),
    ("POST", "/api/pull", {"model": "127.0.0.1:9/none/x:y", "insecure": True, "stream": False},
     TRANSFER),
    ("POST", "/api/push", {"model": "i12-no-such-model", "stream": False}, TRANSFER),
    ("POST", "/v1/chat/completions", {"model": MODEL, "messages": [
        {"role": "user", "content": "hi"}], "max_tokens": 1},
     {"model": "string", "messages": "openai_messages", "stream": "bool", "max_tokens": "int32",
      "seed": "int", "temperature": "float", "top_p": "float", "frequency_penalty": "float",
      "presence_penalty": "float", "response_format": "object", "tools": "tools",
      "logprobs": "bool", "stream_options": "object"}),
    ("POST", "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 1},
     {"model": "string", "prompt": "string", "suffix": "string", "max_tokens": "int32",
      "seed": "int", "temperature": "float", "top_p": "float", "stream": "bool"}),
    ("POST", "/v1/embeddings", {"model": MODEL, "input": "hi"},
     {"model": "string", "input": "input", "encoding_format": "string", "dimensions": "int"}),
]
# `null` is not here: Go decodes it into a request struct as no fields, so it gets {}'s reply
# (tests/gateway/test_fuzz_findings.py checks that).
MALFORMED = [
    b"", b"  \n", b"[]", b"1", b'"x"', b"true", b"{", b"}", b"{'model':1}",
    b'{"model"}', b"{} {}", b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":1e999}',
    b'{"a":' + b"1" * 5000 + b"}", b"\xff\xfe{}", b'{"model":"\xff"}', b'{"model":"\\ud800"}',
    b'{"model":"x","prompt":"\\udfff"}', b'{"a":' + b"[" * 200_000 + b"}",
    b'{"a":' + b"[" * 101 + b"]" * 101 + b"}", b"\xef\xbb\xbf{}", b'{"a":[1,]}', b'{"a":01}',
]


def field_cases():
    for method, path, body, fields in ENDPOINTS:
        for field, kind in fields.items():
            for value in BAD[kind]:
                shown = json.dumps(value)
                shown = shown if len(shown) < 40 else f"{shown[:30]}...({len(shown)} bytes)"
                yield pytest.param(method, path, {**body, field: value},
                                   id=f"{path} {field}={shown}")
    for name, values in BAD_OPTIONS.items():
        for value in values:
            for path, body in (("/api/generate", ENDPOINTS[0][2]), ("/api/embed", ENDPOINTS[2][2])):
                yield pytest.param("POST", path, {**body, "options": {name: value}},
                                   id=f"{path} options.{name}={json.dumps(value)}")


def malformed_cases():
    for method, path, _, _ in ENDPOINTS:
        for raw in MALFORMED:
            shown = raw if len(raw) < 40 else raw[:30] + b"...(%d bytes)" % len(raw)
            yield pytest.param(method, path, raw, id=f"{path} {shown!r}")


def check_refusal(status: int, raw: bytes, path: str) -> str:
    assert status == 400, raw[:300]
    body = json.loads(raw)
    if path.startswith("/v1/"):
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param",
                                                                  "code"}
        assert body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
    else:
        assert set(body) == {"error"}
        message = body["error"]
    assert isinstance(message, str) and message
    assert not any(leak in message for leak in LEAKS), message
    return message


@pytest.mark.parametrize("method,path,body", list(field_cases()))
def test_a_bad_field_is_a_400(corral, method, path, body):
    status, raw, _ = corral.request(method, path, body)
    check_refusal(status, raw, path)


@pytest.mark.parametrize("method,path,raw", list(malformed_cases()))
def test_a_malformed_body_is_a_400(corral, method, path, raw):
    status, answer, _ = corral.request(method, path, raw=raw)
    check_refusal(status, answer, path)


@pytest.mark.parametrize("method,path", [(method, path) for method, path, _, _ in ENDPOINTS])
def test_a_null_body_is_the_empty_request(corral, method, path):
    """Go decodes ``null`` into the zero request, as it does ``{}``: the same answer."""
    null, empty = (corral.request(method, path, raw=raw)[:2] for raw in (b"null", b"{}"))
    assert null == empty and null[0] < 500


def test_the_matrix_is_hundreds_of_cases():
    assert len(list(field_cases())) + len(list(malformed_cases())) > 500


def test_the_server_is_healthy_afterwards(corral):
    """Runs after the matrix (file order): nothing crashed, nothing stuck, nothing created."""
    status, body = corral.post("/api/generate", {"model": MODEL, "prompt": "Hi",
                                                 "stream": False, "options": {"num_predict": 2}})
    assert status == 200 and body["done"]
    assert corral.request("GET", "/api/ps")[0] == 200
    names = {m["name"] for m in corral.get("/api/tags")["models"]}
    assert not {"i12-bad-create:latest", "i12-bad-copy:latest"} & names
    assert corral.log_events("request_crashed") == [] and corral.log_events("rpc_crashed") == []
