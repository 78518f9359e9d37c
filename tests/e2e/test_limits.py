"""Limits and honest counts through a real ``corral serve``: oversize bodies by declared and by
actual length, keep_alive past Go's range, huge histories and batches, prompts past gRPC's
default message size, and prompt_eval_count that counts the cached prompt too."""

from __future__ import annotations

import json
import socket
import time

import pytest

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
QUICK = {"num_predict": 2, "temperature": 0}


def raw_http(corral, head: bytes, body_chunks=(), timeout: float = 30.0) -> tuple[int, dict]:
    """Send ``head`` and the body chunks on one socket (ignoring a server that stops reading)
    and return the status and JSON body of the reply."""
    with socket.create_connection(("127.0.0.1", corral.port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply) < _expected(reply):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    head_text, _, body = reply.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), json.loads(body)


def _expected(reply: bytes) -> int:
    head, _, _ = reply.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(reply) + 1


def test_a_declared_length_over_the_limit_is_refused_before_reading(corral):
    started = time.monotonic()
    status, body = raw_http(corral, b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Content-Type: application/json\r\n"
                                    b"Content-Length: 1073741824\r\n\r\n", [b'{"model":'])
    assert status == 413 and time.monotonic() - started < 10
    assert body == {"error": "request body too large: Content-Length 1073741824 is over the "
                             "64 MiB limit of /api/generate"}


@pytest.mark.parametrize("path,size,limit", [("/api/show", 3 << 20, "1 MiB"),
                                             ("/api/chat", 80 << 20, "64 MiB")])
def test_a_chunked_body_is_refused_once_it_crosses_the_limit(corral, path, size, limit):
    piece = b" " * (1 << 20)
    chunks = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(size // len(piece)))
    status, body = raw_http(corral, f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n".encode(), chunks)
    assert (status, body) == (413, {"error": f"request body too large: over the {limit} "
                                             f"limit of {path}"})


def test_an_openai_route_says_413_in_openai_shape(corral):
    status, body = raw_http(corral, b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Content-Length: 999999999999\r\n\r\n")
    assert status == 413 and body["error"]["type"] == "api_error"


@pytest.mark.parametrize("keep_alive,message", [
    (1e20, "keep_alive 1e+20 is out of range: a duration is at most 2562047h47m16.854775807s "
           "(a negative keep_alive keeps the model loaded forever)"),
    ("99999999999h", 'time: invalid duration "99999999999h"'),
])
def test_keep_alive_beyond_gos_range_is_a_400_that_never_sticks(corral, keep_alive, message):
    for path, body in (("/api/generate", {"prompt": "hi"}), ("/api/generate", {}),
                       ("/api/chat", {"messages": []}), ("/api/embed", {"input": "x"})):
        assert corral.post(path, {"model": MODEL, "keep_alive": keep_alive, **body}) == \
            (400, {"error": message})
    assert corral.request("GET", "/api/ps")[0] == 200
    status, body = corral.post("/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False,
                                                 "keep_alive": "5m", "options": QUICK})
    assert status == 200 and body["done"]
    (loaded,) = [m for m in corral.get("/api/ps")["models"] if m["name"] == MODEL]
    assert loaded["expires_at"] < "2030"  # the 5m of the last request, not an overflow


def test_the_same_chat_twice_reports_the_same_prompt_eval_count(corral):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What colour is the sky on a clear day?"}]
    counts = []
    for _ in range(2):
        status, body = corral.post("/api/chat", {"model": MODEL, "messages": messages,
                                                 "stream": False, "options": QUICK})
        assert status == 200
        counts.append(body["prompt_eval_count"])
    usage = []
    for _ in range(2):
        status, body = corral.post("/v1/chat/completions", {
            "model": MODEL, "messages": messages, "max_tokens": 2, "temperature": 0})
        assert status == 200
        usage.append(body["usage"]["prompt_tokens"])
    assert counts[0] == counts[1] > 20 and usage[0] == usage[1] == counts[0]


def test_prompts_past_grpcs_default_message_size_work(corral):
    """4.3 MB crosses gRPC's 4 MiB default on the way to the runner (the prompt is tokenized
    there to be fitted) and to the registry (a system prompt stored by create)."""
    text = "All work and no play makes Jack a dull boy. " * 100_000
    status, body = corral.post("/api/generate", {"model": MODEL, "prompt": text, "raw": True,
                                                 "stream": False, "_debug_render_only": True})
    assert status == 200, body
    name = "i12-big-system"
    status, body = corral.post("/api/create", {"model": name, "from": MODEL, "system": text,
                                               "stream": False})
    try:
        assert (status, body) == (200, {"status": "success"})
        status, shown = corral.post("/api/show", {"model": name})
        assert status == 200 and shown["system"] == text
    finally:
        corral.request("DELETE", "/api/delete", {"model": name})


def test_a_long_history_is_fitted_to_the_context(corral):
    messages = []
    for i in range(2500):
        messages += [{"role": "user", "content": f"Question {i}: is {i} even?"},
                     {"role": "assistant", "content": "yes" if i % 2 == 0 else "no"}]
    messages.append({"role": "user", "content": "Is 7 even?"})
    status, body = corral.post("/api/chat", {"model": MODEL, "messages": messages,
                                             "stream": False, "_debug_render_only": True,
                                             "options": {"num_ctx": 512}})
    assert status == 200, body
    rendered = body["_debug_info"]["rendered_template"]
    assert rendered.endswith("Is 7 even?<|im_end|>\n<|im_start|>assistant\n")
    assert "Question 2499:" in rendered and "Question 0:" not in rendered
    assert len(rendered) < 512 * 8


@pytest.mark.parametrize("path,body,message", [
    ("/api/chat", {"messages": [{"role": "user", "content": "x"}] * 200_000},
     "too many messages: 200000 (the limit is 10000 per request)"),
    ("/api/embed", {"input": ["x"] * 100_000},
     "too many inputs: 100000 (the limit is 2048 per request)"),
])
def test_huge_batches_are_refused_promptly(corral, path, body, message):
    assert corral.post(path, {"model": MODEL, **body}) == (400, {"error": message})


def test_an_embed_batch_within_the_limit_is_answered(corral):
    status, body = corral.post("/api/embed", {"model": MODEL,
                                              "input": [f"item {i}" for i in range(8)]})
    assert status == 200 and len(body["embeddings"]) == 8


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/generate", {"prompt": "hi"}), ("POST", "/api/show", {}),
    ("POST", "/api/pull", {}), ("POST", "/api/create", {"from": MODEL}),
    ("DELETE", "/api/delete", {}), ("POST", "/api/embed", {"input": "x"}),
])
def test_a_20000_character_model_name_is_a_400_not_a_503(corral, method, path, body):
    status, raw, _ = corral.request(method, path, {"model": "x" * 20_000, **body})
    assert status == 400, raw[:200]
    assert "invalid" in json.loads(raw)["error"]
