"""/api/pull and /api/push: Ollama's NDJSON progress, stream:false, and error statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.gateway.transfer_stack import gateway_client, real_registry
from tests.registry.conftest import write_tiny_gguf
from tests.registry.fake_oci import FakeOCI, digest


@pytest.fixture
def gguf(tmp_path: Path) -> bytes:
    return write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()


@pytest.fixture
async def remote(aiohttp_server, gguf) -> tuple[FakeOCI, str]:
    fake = FakeOCI()
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    fake.port = server.port
    fake.add_gguf_model("library/tiny", "v1", gguf)
    return fake, f"127.0.0.1:{server.port}"


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    async with real_registry(tmp_path / "models") as registry:
        yield await gateway_client(aiohttp_client, registry, tmp_path)


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


async def test_pull_streams_ollamas_progress(client, remote, gguf):
    fake, host = remote
    response = await client.post("/api/pull", json={"model": f"{host}/library/tiny:v1", "insecure": True})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    lines = ndjson(await response.text())
    model = digest(gguf)
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-3:] == [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                          {"status": "success"}]
    layer = [line for line in lines if line.get("digest") == model]
    assert layer[-1] == {"status": f"pulling {model[7:19]}", "digest": model,
                         "total": len(gguf), "completed": len(gguf)}
    assert all("completed" not in line or line["completed"] > 0 for line in lines)
    tags = await (await client.get("/api/tags")).json()
    assert [m["name"] for m in tags["models"]] == [f"{host}/library/tiny:v1"]


async def test_pull_without_stream_answers_the_last_object(client, remote):
    _, host = remote
    response = await client.post("/api/pull", json={"name": f"{host}/library/tiny:v1",
                                                    "insecure": True, "stream": False})
    assert (response.status, await response.json()) == (200, {"status": "success"})


async def test_pull_errors(client, remote):
    _, host = remote
    missing = f"{host}/library/nope:v1"
    streamed = await client.post("/api/pull", json={"model": missing, "insecure": True})
    assert streamed.status == 200
    assert ndjson(await streamed.text()) == [
        {"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}]
    single = await client.post("/api/pull", json={"model": missing, "insecure": True, "stream": False})
    assert (single.status, await single.json()) == (
        500, {"error": "pull model manifest: file does not exist"})
    bad = await client.post("/api/pull", json={"model": "bad name!"})
    assert (bad.status, await bad.json()) == (400, {"error": "invalid model name"})
    typed = await client.post("/api/pull", json={"model": "x", "insecure": "yes"})
    assert typed.status == 400 and "PullRequest.insecure" in (await typed.json())["error"]


async def test_an_upstream_refusal_is_a_502_in_ollamas_shape(client, remote):
    """The remote registry's 401 crosses the registry's gRPC boundary as ``UpstreamError``: a
    502 with the registry's words (Ollama: 500), never a generic internal error."""
    fake, host = remote
    fake.auth = "basic"  # and no credentials configured here
    single = await client.post("/api/pull", json={"model": f"{host}/library/tiny:v1",
                                                  "insecure": True, "stream": False})
    assert single.status == 502
    assert (await single.json())["error"] == (
        f"unauthorized: {host} requires a username and password "
        "(configure them in the file named by CORRAL_REGISTRY_AUTH)")


async def test_push_round_trip_and_errors(client, remote, gguf):
    fake, host = remote
    await client.post("/api/pull", json={"model": f"{host}/library/tiny:v1", "insecure": True,
                                         "stream": False})
    copied = await client.post("/api/copy", json={"source": f"{host}/library/tiny:v1",
                                                  "destination": f"{host}/mine/tiny:v2"})
    assert copied.status == 200
    response = await client.post("/api/push", json={"model": f"{host}/mine/tiny:v2", "insecure": True})
    lines = ndjson(await response.text())
    assert lines[0] == {"status": "retrieving manifest"}
    assert lines[-2:] == [{"status": "pushing manifest"}, {"status": "success"}]
    assert {line["status"] for line in lines if "digest" in line} >= {f"pushing {digest(gguf)[7:19]}"}
    assert fake.manifests[("mine/tiny", "v2")] == fake.manifests[("library/tiny", "v1")]
    nameless = await client.post("/api/push", json={})
    assert (nameless.status, await nameless.json()) == (400, {"error": "model is required"})
    absent = await client.post("/api/push", json={"model": f"{host}/mine/absent:v1",
                                                  "insecure": True, "stream": False})
    assert absent.status == 404
