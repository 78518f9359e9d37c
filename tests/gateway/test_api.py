"""The native API through the real app, with fake runners behind the real Scheduler."""

from __future__ import annotations

import json
import re

import pytest

from gateway.app import create_app
from gateway.keys import SCHEDULER
from gateway.routes import OLLAMA_VERSION
from gateway.scheduler import Scheduler
from tests.gateway.fakes import FakeRegistry
from tests.polling import until_async

MODEL = "smollm2:135m"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
FINAL = ["model", "created_at", "response", "done", "done_reason", "context", "total_duration",
         "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"]


async def lines(response) -> list[dict]:
    return [json.loads(line) for line in (await response.text()).splitlines()]


async def test_root_version_and_head(client):
    response = await client.get("/")
    assert (response.status, await response.text()) == (200, "Ollama is running")
    assert (await client.head("/")).status == 200
    response = await client.get("/api/version")
    assert await response.json() == {"version": OLLAMA_VERSION}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_tags_shape(client):
    body = await (await client.get("/api/tags")).json()
    names = [m["name"] for m in body["models"]]
    assert set(names) == {MODEL, "gemma3:270m"}
    model = next(m for m in body["models"] if m["name"] == MODEL)
    assert list(model) == ["name", "model", "modified_at", "size", "digest", "details"]
    assert model["digest"] == "ab" * 32
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", model["modified_at"])
    assert {"parent_model", "format", "family", "families", "parameter_size",
            "quantization_level"} <= set(model["details"])


async def test_tags_empty_is_list(aiohttp_client, settings, spawner):
    app = create_app(settings, registry=FakeRegistry(), scheduler=Scheduler(settings, spawner))
    client = await aiohttp_client(app)
    assert await (await client.get("/api/tags")).json() == {"models": []}


async def test_generate_streams_chunks_then_final(client, spawner):
    response = await client.post("/api/generate", json={"model": MODEL, "prompt": "Hi"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    *chunks, final = await lines(response)
    assert [c["response"] for c in chunks] == ["Hello", ",", " world", "!"]
    assert all(list(c) == ["model", "created_at", "response", "done"] for c in chunks)
    assert all(c["done"] is False and RFC3339_UTC.match(c["created_at"]) for c in chunks)
    assert list(final) == FINAL
    assert final["done_reason"] == "stop" and final["context"] == [1, 2, 3]
    assert final["total_duration"] >= final["load_duration"] > 0
    (request,) = spawner.spawned[0].client.requests
    assert request.prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert request.parse_special


async def test_generate_non_stream_and_raw(client, spawner):
    response = await client.post("/api/generate", json={
        "model": MODEL, "prompt": "<b>raw</b>", "raw": True, "stream": False})
    body = await response.json()
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert body["response"] == "Hello, world!" and body["done"] is True
    assert "context" not in body
    assert spawner.spawned[0].client.requests[0].prompt == "<b>raw</b>"


async def test_go_escapes_in_output(client, spawner):
    spawner.script.pieces = ("<a & b>",)
    response = await client.post("/api/generate", json={"model": MODEL, "prompt": "x"})
    assert "\\u003ca \\u0026 b\\u003e" in await response.text()


async def test_generate_context_continuation_and_options(client, spawner):
    await client.post("/api/generate", json={
        "model": MODEL, "prompt": "more", "context": [5, 6], "stream": False,
        "options": {"temperature": 0, "seed": 42, "num_predict": 5, "stop": ["\n"], "bogus": 1}})
    request = spawner.spawned[0].client.requests[0]
    assert list(request.context) == [5, 6]
    assert request.sampling.temperature == 0 and request.sampling.seed == 42
    assert request.num_predict == 5 and list(request.stop) == ["\n"]
    assert request.sampling.top_k == 40  # Ollama's default travels explicitly


async def test_raw_with_system_is_rejected(client):
    response = await client.post("/api/generate", json={
        "model": MODEL, "prompt": "x", "raw": True, "system": "s"})
    assert response.status == 400
    assert await response.json() == {"error": "raw mode does not support template, system, or context"}


async def test_chat_stream_and_non_stream(client, spawner):
    messages = [{"role": "USER", "content": "Hi"}]
    response = await client.post("/api/chat", json={"model": MODEL, "messages": messages})
    *chunks, final = await lines(response)
    assert all(c["message"]["role"] == "assistant" and not c["done"] for c in chunks)
    assert final["done"] and final["message"] == {"role": "assistant", "content": ""}
    assert "context" not in final and final["eval_count"] == 4
    body = await (await client.post("/api/chat", json={
        "model": MODEL, "messages": messages, "stream": False})).json()
    assert body["message"] == {"role": "assistant", "content": "Hello, world!"}
    assert len(spawner.spawned) == 1  # the second request reused the loaded runner
    assert "<|im_start|>user\nHi<|im_end|>" in spawner.spawned[0].client.requests[0].prompt


async def test_load_and_unload_replies(client, spawner):
    body = await (await client.post("/api/generate", json={"model": MODEL})).json()
    assert list(body) == ["model", "created_at", "response", "done", "done_reason"]
    assert body["done_reason"] == "load" and body["response"] == ""
    assert len(spawner.alive) == 1
    ps = await (await client.get("/api/ps")).json()
    (loaded,) = ps["models"]
    assert loaded["name"] == MODEL and loaded["digest"] == "ab" * 32
    assert loaded["context_length"] == 4096 and loaded["size_vram"] == 0 and loaded["expires_at"]
    response = await client.post("/api/chat", json={"model": MODEL, "messages": [], "keep_alive": 0})
    body = await response.json()
    assert body["done_reason"] == "unload" and body["message"] == {"role": "assistant", "content": ""}
    await until_async(lambda: not spawner.alive)
    ps = await (await client.get("/api/ps")).json()
    assert ps["models"] == [] and ps["queue"]["waiting"] == 0 and ps["queue"]["limit"] == 512




@pytest.mark.parametrize("path,body,status,error", [
    ("/api/generate", {"model": "nope:1b", "prompt": "hi"}, 404, "model 'nope:1b' not found"),
    ("/api/chat", {"model": "nope", "messages": []}, 404, "model 'nope' not found"),
    ("/api/generate", {"model": "", "prompt": "hi"}, 404, "model '' not found"),
    ("/api/chat", {"model": "", "messages": []}, 400, "model is required"),
    ("/api/generate", {"model": "bad name!", "prompt": "hi"}, 400, "invalid model name"),
    ("/api/generate", {"model": MODEL, "prompt": "hi", "options": {"stop": "x"}}, 400,
     'option "stop" must be of type array'),
    ("/api/generate", {"model": MODEL, "prompt": "hi", "options": {"temperature": "hot"}}, 400,
     'option "temperature" must be of type float32'),
    ("/api/generate", {"model": MODEL, "prompt": "hi", "keep_alive": "10"}, 400,
     'time: missing unit in duration "10"'),
    ("/api/chat", {"model": MODEL, "messages": [], "keep_alive": True}, 400,
     "Unsupported type: 'bool'"),
    ("/api/generate", {"model": MODEL, "prompt": 3}, 400,
     "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string"),
    ("/api/generate", [1], 400,
     "json: cannot unmarshal array into Go value of type api.GenerateRequest"),
])
async def test_errors_have_ollama_shape(client, path, body, status, error):
    response = await client.post(path, json=body)
    assert response.status == status
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert await response.json() == {"error": error}


async def test_malformed_json_and_missing_body(client):
    response = await client.post("/api/generate", data=b"{not json")
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid character 'n' looking for beginning of object key string"}
    response = await client.post("/api/chat", data=b"")
    assert (response.status, await response.json()) == (400, {"error": "missing request body"})


async def test_router_404_and_405_are_plain_text(client):
    response = await client.get("/api/nothing")
    assert (response.status, await response.text()) == (404, "404 page not found")
    assert response.headers["Content-Type"] == "text/plain"
    response = await client.get("/api/generate")
    assert (response.status, await response.text()) == (405, "405 method not allowed")


async def test_request_id_is_echoed_or_created(client):
    response = await client.get("/api/version", headers={"X-Request-Id": "trace-1"})
    assert response.headers["X-Request-Id"] == "trace-1"
    response = await client.post("/api/generate", json={"model": MODEL, "prompt": "x"})
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-Id"])


async def test_mid_stream_error_is_last_line_with_200(client, spawner):
    spawner.script.fail_after = 2
    response = await client.post("/api/generate", json={"model": MODEL, "prompt": "x"})
    assert response.status == 200
    *chunks, last = await lines(response)
    assert len(chunks) == 2 and list(last) == ["error"]


async def test_error_before_first_byte_keeps_real_status(client, spawner):
    spawner.script.load_exit = 1
    response = await client.post("/api/generate", json={"model": MODEL, "prompt": "x"})
    assert response.status == 500
    error = (await response.json())["error"]
    assert "llama runner process has terminated: exit status 1" in error


async def test_runner_crash_mid_stream_then_respawn(client, spawner):
    spawner.script.delay = 0.02
    spawner.script.pieces = ("a",) * 50
    response = await client.post("/api/generate", json={"model": MODEL, "prompt": "x"})
    assert (await response.content.readline())
    spawner.spawned[0].crash(-9)
    rest = [json.loads(line) for line in (await response.text()).splitlines()]
    assert "signal SIGKILL" in rest[-1]["error"] and "out of cheese" in rest[-1]["error"]
    spawner.script.delay = 0
    body = await (await client.post("/api/generate", json={
        "model": MODEL, "prompt": "x", "stream": False})).json()
    assert body["done"] is True and len(spawner.spawned) == 2


async def test_queue_overflow_is_503(make_client, settings, spawner):
    import asyncio
    spawner.script.load_delay = 0.3
    client = await make_client(settings, max_queue=1)
    scheduler = client.app[SCHEDULER]
    first = asyncio.ensure_future(client.post("/api/generate", json={"model": MODEL}))
    await spawner.until_spawned(1)  # loading: in service, not queued
    assert scheduler.pending == 0
    queued = asyncio.ensure_future(client.post("/api/generate", json={"model": "gemma3:270m"}))
    await until_async(lambda: scheduler.pending == 1, what="second request queued")  # load lock
    third = await client.post("/api/generate", json={"model": "gemma3:270m"})
    assert third.status == 503
    assert await third.json() == {
        "error": "server busy, please try again.  maximum pending requests exceeded"}
    assert (await first).status == 200 and (await queued).status == 200
