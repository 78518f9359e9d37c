"""Corral as a registry: /v2/ read side (manifests, ranged blobs) and the opt-in write side."""

from __future__ import annotations

import asyncio

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.scheduler import Scheduler
from registry.transfer.service import TransferService
from services.errors import RunnerUnavailableError
from services.names import parse_name
from services.settings import GatewaySettings
from tests.e2e.openapi_check import check_response
from tests.gateway.transfer_stack import gateway_client, real_registry
from tests.registry.conftest import open_store, write_tiny_gguf
from tests.registry.transfer_helpers import fast_options

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
async def registry(tmp_path: Path):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    async with real_registry(tmp_path / "models", {"tiny:v1": gguf}) as client:
        yield client


@pytest.fixture
async def client(aiohttp_client, registry, tmp_path):
    return await gateway_client(aiohttp_client, registry, tmp_path)


@pytest.fixture
async def writable(aiohttp_client, registry, tmp_path):
    return await gateway_client(aiohttp_client, registry, tmp_path, registry_write=True)


async def test_base_endpoint(client):
    response = await client.get("/v2/")
    assert (response.status, await response.text()) == (200, "{}")
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_manifest_bytes_by_tag_and_by_digest(client, registry):
    stored = (await registry.get_manifest("library/tiny", "v1")).content
    response = await client.get("/v2/library/tiny/manifests/v1")
    assert response.status == 200 and await response.read() == stored
    assert response.headers["Content-Type"] == SCHEMA2
    assert response.headers["Docker-Content-Digest"] == sha(stored)
    head = await client.head("/v2/library/tiny/manifests/v1")
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(stored)
    assert await head.read() == b""
    by_digest = await client.get(f"/v2/library/tiny/manifests/{sha(stored)}")
    assert await by_digest.read() == stored


async def test_unknown_manifest_is_an_oci_error(client):
    response = await client.get("/v2/library/nope/manifests/v1")
    assert response.status == 404
    assert (await response.json())["errors"][0]["code"] == "MANIFEST_UNKNOWN"


async def test_blob_full_ranged_and_head(client, registry, tmp_path):
    stored = json.loads((await registry.get_manifest("library/tiny", "v1")).content)
    layer = stored["layers"][0]
    data = (tmp_path / "tiny.gguf").read_bytes()
    url = f"/v2/library/tiny/blobs/{layer['digest']}"
    full = await documented(client, "GET", url)
    assert full.status == 200 and await full.read() == data
    assert full.headers["Docker-Content-Digest"] == layer["digest"]
    assert full.headers["Location"].endswith(url)  # what real Ollama clients need on a 200
    part = await documented(client, "GET", url, headers={"Range": "bytes=10-109"})
    assert part.status == 206 and await part.read() == data[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(data)}"
    head = await documented(client, "HEAD", url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(data)
    missing = await documented(client, "GET", "/v2/library/tiny/blobs/sha256:" + "0" * 64)
    assert missing.status == 404 and (await missing.json())["errors"][0]["code"] == "BLOB_UNKNOWN"
    bad = await documented(client, "GET", "/v2/library/tiny/blobs/sha256:xyz")
    assert bad.status == 400


async def test_write_side_is_off_by_default(client):
    response = await client.post("/v2/library/x/blobs/uploads/")
    assert response.status == 405
    assert (await response.json())["errors"][0]["code"] == "UNSUPPORTED"
    response = await client.put("/v2/library/x/manifests/v1", data=b"{}")
    assert response.status == 405


async def test_chunked_upload_with_a_retried_part(writable):
    data = bytes(range(256)) * 40
    start = await writable.post("/v2/library/up/blobs/uploads/")
    assert start.status == 202
    location = start.headers["Location"]
    assert location.startswith("http://127.0.0.1:")  # absolute, as Ollama's uploader needs
    first = await writable.session.patch(location, data=data[:6000], headers={"Content-Range": "0-5999"})
    assert first.status == 202 and first.headers["Range"] == "0-5999"
    # a retry of an overlapping part starts at 4000: the bytes after it are replaced
    again = await writable.session.patch(first.headers["Location"], data=data[4000:],
                                 headers={"Content-Range": f"4000-{len(data) - 1}"})
    assert again.headers["Range"] == f"0-{len(data) - 1}"
    gap = await writable.session.patch(again.headers["Location"], data=b"x",
                               headers={"Content-Range": f"{len(data) + 5}-{len(data) + 5}"})
    assert gap.status == 416
    done = await writable.session.put(f"{again.headers['Location']}?digest={sha(data)}")
    assert done.status == 201 and done.headers["Docker-Content-Digest"] == sha(data)
    blob = await writable.get(f"/v2/library/up/blobs/{sha(data)}")
    assert await blob.read() == data


async def test_upload_with_the_wrong_digest_stores_nothing(writable):
    start = await writable.post("/v2/library/up/blobs/uploads/")
    await writable.session.patch(start.headers["Location"], data=b"hello")
    done = await writable.session.put(f"{start.headers['Location']}?digest={sha(b'other')}")
    assert done.status == 400
    assert (await done.json())["errors"][0]["code"] == "DIGEST_INVALID"
    assert (await writable.head(f"/v2/library/up/blobs/{sha(b'hello')}")).status == 404


async def test_monolithic_upload_mount_and_manifest_checks(writable, registry):
    manifest = (await registry.get_manifest("library/tiny", "v1")).content
    layer = json.loads(manifest)["layers"][0]["digest"]
    mounted = await writable.post(f"/v2/library/copy/blobs/uploads/?mount={layer}&from=library/tiny")
    assert mounted.status == 201
    mono = await writable.post(f"/v2/library/copy/blobs/uploads/?digest={sha(b'abc')}", data=b"abc")
    assert mono.status == 201
    assert (await writable.head(f"/v2/library/copy/blobs/{sha(b'abc')}")).status == 200
    dangling = manifest.replace(layer[7:].encode(), b"f" * 64)
    refused = await writable.put("/v2/library/copy/manifests/v1", data=dangling,
                                 headers={"Content-Type": SCHEMA2})
    assert refused.status == 400 and "blob unknown" in (await refused.json())["errors"][0]["message"]
    stored = await writable.put("/v2/library/copy/manifests/v1", data=manifest,
                                headers={"Content-Type": SCHEMA2})
    assert stored.status == 201 and stored.headers["Docker-Content-Digest"] == sha(manifest)
    assert (await registry.resolve("copy:v1")).model.digest == sha(manifest)[7:]


async def test_push_to_and_pull_from_a_corral(writable, registry, tmp_path):
    """The transfer client against this gateway: push a model in, pull it back out elsewhere."""
    host = f"127.0.0.1:{writable.server.port}"
    gguf = write_tiny_gguf(tmp_path / "other.gguf", context_length=512)
    async with open_store(tmp_path / "elsewhere") as store:
        record = await store.import_gguf(parse_name(f"{host}/team/other:v2"), gguf)
        service = TransferService(store, fast_options(tmp_path))
        pushed = [p.status async for p in service.push(f"{host}/team/other:v2", insecure=True)]
        assert pushed[-1] == "success"
        assert (await registry.resolve("team/other:v2")).model.digest == record.digest
        pulled = [p.status async for p in service.pull(f"{host}/library/tiny:v1", insecure=True)]
        assert pulled[-1] == "success"
        tiny = await store.resolve(f"{host}/library/tiny:v1")
        assert tiny.model_path.read_bytes() == (tmp_path / "tiny.gguf").read_bytes()
        await service.close()


async def test_a_blob_changed_on_disk_is_never_served_whole_under_its_digest(client, registry,
                                                                           tmp_path):
    import aiohttp

    layer = json.loads((await registry.get_manifest("library/tiny", "v1")).content)["layers"][0]
    path = Path((await registry.stat_blob(layer["digest"])).path)
    url = f"/v2/library/tiny/blobs/{layer['digest']}"
    good = path.read_bytes()
    part = await client.get(url, headers={"Range": "bytes=0-9"})  # verifies the whole file once
    assert part.status == 206 and await part.read() == good[:10]
    rotten = good[:300] + bytes([good[300] ^ 1]) + good[301:]
    path.write_bytes(rotten)
    response = await client.get(url)
    assert response.status == 200 and int(response.headers["Content-Length"]) == len(good)
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()  # cut short: never the complete wrong bytes
    ranged = await documented(client, "GET", url, headers={"Range": "bytes=0-9"})  # re-hashed
    assert ranged.status == 500 and layer["digest"] in (await ranged.json())["errors"][0]["message"]
    path.write_bytes(good)
    again = await client.get(url, headers={"Range": "bytes=5-"})
    assert again.status == 206 and await again.read() == good[5:]
    beyond = await documented(client, "GET", url, headers={"Range": f"bytes={len(good)}-"})
    assert beyond.status == 416


async def test_blobs_are_relayed_from_the_registry_without_a_shared_disk(
        aiohttp_client, registry, tmp_path):
    """A gateway on another host (its own cache dir) streams blobs over ReadBlob instead."""
    from gateway.blob_cache import BlobCache

    settings = dataclasses.replace(GatewaySettings.from_env({}), runtime_dir=tmp_path / "run")
    blobs = BlobCache(tmp_path / "cache", registry, use_registry_files=False)
    app = create_app(settings, registry=registry, scheduler=Scheduler(settings), blobs=blobs)
    client = await aiohttp_client(app, server_kwargs={"host": "127.0.0.1"})
    layer = json.loads((await registry.get_manifest("library/tiny", "v1")).content)["layers"][0]
    data = (tmp_path / "tiny.gguf").read_bytes()
    url = f"/v2/library/tiny/blobs/{layer['digest']}"
    full = await documented(client, "GET", url)
    assert full.status == 200 and await full.read() == data
    assert full.headers["Location"].endswith(url) and full.headers["Accept-Ranges"] == "bytes"
    part = await documented(client, "GET", url, headers={"Range": "bytes=10-109"})
    assert part.status == 206 and await part.read() == data[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(data)}"
    tail = await documented(client, "GET", url, headers={"Range": "bytes=-5"})
    assert tail.status == 206 and await tail.read() == data[-5:]
    beyond = await documented(client, "GET", url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status == 416
    head = await documented(client, "HEAD", url)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(data)
    assert not (tmp_path / "cache").exists()  # relaying fills no cache


async def documented(client, method: str, url: str, **kwargs):
    """The response, after checking it against gateway/openapi (as the e2e tests do)."""
    response = await client.request(method, url, **kwargs)
    body = await response.read()
    # in a thread: the checker reads the spec files on first use (blockbuster guards the loop)
    await asyncio.to_thread(check_response, method, str(response.url), response.status,
                            response.headers, body)
    return response


async def test_a_registry_that_is_down_is_an_oci_503(client, registry, monkeypatch):
    async def down(*_args, **_kwargs):
        raise RunnerUnavailableError("the registry is unavailable")

    monkeypatch.setattr(registry, "stat_blob", down)
    monkeypatch.setattr(registry, "get_manifest", down)
    for url in ("/v2/library/tiny/blobs/sha256:" + "0" * 64, "/v2/library/tiny/manifests/v1"):
        response = await documented(client, "GET", url)
        assert response.status == 503
        assert (await response.json())["errors"][0]["message"] == "the registry is unavailable"
