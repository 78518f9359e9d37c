"""Corral's store-keeping endpoints over a real registry: rescan, verify, exact manifests."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from tests.gateway.transfer_stack import gateway_client, real_registry
from tests.ollama_store import build_library
from tests.registry.conftest import write_tiny_gguf

SMOL = "registry.ollama.ai/library/smol:latest"


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    build_library(tmp_path / "models", gguf)
    async with real_registry(tmp_path / "models") as registry:
        yield await gateway_client(aiohttp_client, registry, tmp_path)


async def ndjson(response) -> list[dict]:
    return [json.loads(line) for line in (await response.read()).splitlines() if line.strip()]


async def test_rescan_follows_the_manifest_files(client, tmp_path: Path):
    coder = tmp_path / "models/manifests/my.registry.example:5000/team/coder/v1"
    coder.unlink()
    response = await client.post("/api/rescan")
    assert response.status == 200
    assert await response.json() == {"indexed": [], "removed": [
        "my.registry.example:5000/team/coder:v1"], "exported": [], "skipped": {}}
    tags = await (await client.get("/api/tags")).json()
    assert [m["name"] for m in tags["models"]] == ["smol:latest"]
    assert tags["models"][0]["capabilities"] == ["completion"]


async def test_manifests_round_trip_byte_for_byte(client, tmp_path: Path):
    stored = (tmp_path / "models/manifests/registry.ollama.ai/library/smol/latest").read_bytes()
    response = await client.get(f"/api/manifests/{SMOL}")
    assert response.status == 200 and await response.read() == stored
    assert response.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(stored).hexdigest()
    put = await client.put("/api/manifests/elsewhere/copy:v2", data=stored)
    assert put.status == 201
    assert (await put.json())["digest"] == "sha256:" + hashlib.sha256(stored).hexdigest()
    copy = tmp_path / "models/manifests/registry.ollama.ai/elsewhere/copy/v2"
    assert copy.read_bytes() == stored


async def test_a_big_manifest_is_read_whole(client, tmp_path: Path):
    """A manifest arriving in many chunks (1 MiB, under the 2 MiB limit) is stored whole."""
    stored = (tmp_path / "models/manifests/registry.ollama.ai/library/smol/latest").read_bytes()
    padded = stored + b" " * (1 << 20)
    put = await client.put("/api/manifests/elsewhere/big:v1", data=io.BytesIO(padded))
    assert put.status == 201, await put.text()
    copy = tmp_path / "models/manifests/registry.ollama.ai/elsewhere/big/v1"
    assert copy.read_bytes() == padded


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("GET", "/api/manifests/nope:v1", None, 404, "model 'nope:v1' not found"),
    ("GET", "/api/manifests/bad name!", None, 400, "invalid model name"),
    ("PUT", "/api/manifests/x:v1", b"{not json", 400, None),
    ("PUT", "/api/manifests/x:v1", json.dumps({
        "schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:" + "0" * 64,
                                        "size": 1}, "layers": []}).encode(), 400,
     f"blob unknown to registry: sha256:{'0' * 64}"),
    ("PUT", "/api/manifests/x:v1", b" " * (2 << 20) + b"{}", 413,
     "request body too large: Content-Length 2097154 is over the 2 MiB limit of "
     "/api/manifests/x:v1"),
    ("POST", "/api/verify", b'{"model": "nope"}', 404, "model 'nope' not found"),
    ("POST", "/api/verify", b'{"repair": "yes"}', 400,
     "json: cannot unmarshal string into Go struct field VerifyRequest.repair of type bool"),
])
async def test_errors(client, method, path, body, status, error):
    # aiohttp warns that a big bytes body "might lock the event loop": stream it from a file object
    response = await client.request(method, path, data=io.BytesIO(body) if isinstance(body, bytes) else body)
    assert response.status == status
    if error:
        assert (await response.json()) == {"error": error}


async def test_verify_reports_each_blob_then_a_summary(client, tmp_path: Path):
    template = next(p for p in (tmp_path / "models/blobs").iterdir()
                    if p.read_bytes().startswith(b"{{- range .Messages"))
    template.write_bytes(template.read_bytes() + b" ")  # changed on disk
    lines = await ndjson(await client.post("/api/verify", json={"model": "smol"}))
    results = [line for line in lines if line["status"] in ("ok", "corrupt", "missing")]
    assert len(results) == 5 and lines[-1] == {"status": "success", "verified": 5, "corrupt": 1,
                                                "missing": 0}
    (bad,) = [line for line in results if line["status"] == "corrupt"]
    assert bad["digest"] == template.name.replace("-", ":", 1)
    assert sorted(bad["models"]) == ["my.registry.example:5000/team/coder:v1", "smol:latest"]
    generate = await client.post("/api/generate", json={"model": "smol", "prompt": "hi"})
    assert generate.status == 500 and bad["digest"] in (await generate.json())["error"]
