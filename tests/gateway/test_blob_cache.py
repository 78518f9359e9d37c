"""The gateway's blob cache against a real registry process-in-miniature (gRPC on port 0).

Blobs are fetched over ``ReadBlob`` into the cache by digest, verified while they stream, kept
within ``CORRAL_CACHE_MAX`` by LRU eviction that spares what loaded runners use, and a byte
flipped in transit (``tests.flip_proxy``) is refused and fetched again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_asyncio
import structlog

from gateway.blob_cache import BlobCache
from registry.server import running_registry
from services.clients.registry import RegistryClient
from services.errors import BlobCorruptError, ModelNotFoundError, ServerBusyError
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import RegistrySettings
from tests.flip_proxy import FlipProxy
from tests.registry.conftest import write_tiny_gguf
from tests.registry.model_helpers import chunks_of, sha256_digest

MiB = 1 << 20


@pytest_asyncio.fixture
async def registry(tmp_path: Path) -> AsyncIterator[tuple[RegistryClient, int]]:
    settings = RegistrySettings(models_dir=tmp_path / "registry", address="127.0.0.1:0",
                                embedded_model=False)
    async with running_registry(settings) as service:
        client = RegistryClient(f"127.0.0.1:{service.port}")
        await client.wait_ready(timeout=5)
        yield client, service.port
        await client.close()


async def put(client: RegistryClient, data: bytes) -> str:
    digest = sha256_digest(data)
    await client.put_blob(digest, chunks_of(data, MiB))
    return digest


async def tiny_model(client: RegistryClient, tmp_path: Path) -> pb.ResolveModelResponse:
    digest = await put(client, write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes())
    async for _ in client.create(pb.CreateModelRequest(name="tiny", files={"t.gguf": digest})):
        pass
    return await client.resolve("tiny")


def events(logs: list[dict], name: str) -> list[dict]:
    return [entry for entry in logs if entry["event"] == name]


async def test_resolve_names_every_runner_blob(registry, tmp_path: Path) -> None:
    client, _ = registry
    resolved = await tiny_model(client, tmp_path)
    (ref,) = resolved.blobs
    assert ref.path == resolved.model_path
    assert ref.size == Path(ref.path).stat().st_size
    assert ref.digest == sha256_digest(Path(ref.path).read_bytes())


async def test_a_remote_gateway_fetches_into_its_cache_once(registry, tmp_path: Path) -> None:
    client, _ = registry
    resolved = await tiny_model(client, tmp_path)
    cache = BlobCache(tmp_path / "cache", client, use_registry_files=False)
    with structlog.testing.capture_logs() as logs:
        local = await cache.localize(resolved)
        again = await cache.localize(resolved)
    assert Path(local.model_path).parent == tmp_path / "cache"
    assert Path(local.model_path).read_bytes() == Path(resolved.model_path).read_bytes()
    assert again.model_path == local.model_path and resolved.model_path != local.model_path
    (fetched,) = events(logs, "blob_fetched")
    assert fetched["verified"] is True and fetched["digest"] == resolved.blobs[0].digest
    assert events(logs, "model_load_progress")[-1]["progress"] == 1.0
    # A restarted gateway trusts its cache (files land only after verification): no refetch.
    restarted = BlobCache(tmp_path / "cache", client, use_registry_files=False)
    with structlog.testing.capture_logs() as logs:
        assert (await restarted.localize(resolved)).model_path == local.model_path
    assert not events(logs, "blob_fetch_started")


async def test_the_registry_files_are_used_in_place_when_this_host_sees_them(
        registry, tmp_path: Path) -> None:
    client, _ = registry
    resolved = await tiny_model(client, tmp_path)
    cache = BlobCache(tmp_path / "cache", client, use_registry_files=True)
    assert await cache.localize(resolved) is resolved
    assert not (tmp_path / "cache").exists()


async def test_concurrent_loads_share_one_fetch(registry, tmp_path: Path) -> None:
    client, _ = registry
    data = os.urandom(3 * MiB)
    digest = await put(client, data)
    cache = BlobCache(tmp_path / "cache", client, use_registry_files=False)
    with structlog.testing.capture_logs() as logs:
        paths = await asyncio.gather(*(cache.local_file(digest, len(data)) for _ in range(4)))
    assert len(set(paths)) == 1 and Path(paths[0]).read_bytes() == data
    assert len(events(logs, "blob_fetch_started")) == 1


async def test_a_byte_flipped_in_transit_is_refused_and_fetched_again(
        registry, tmp_path: Path) -> None:
    _, port = registry
    proxy = FlipProxy("127.0.0.1", port, flips=1).start()
    client = RegistryClient(proxy.address)
    try:
        data = os.urandom(2 * MiB)
        digest = await put(client, data)
        cache = BlobCache(tmp_path / "cache", client, use_registry_files=False)
        with structlog.testing.capture_logs() as logs:
            path = await cache.local_file(digest, len(data))
    finally:
        await client.close()
        proxy.stop()
    assert proxy.flipped == 1
    (refused,) = events(logs, "blob_fetch_refused")
    assert "digest mismatch" in refused["error"] and refused["attempt"] == 1
    assert [e["attempt"] for e in events(logs, "blob_fetch_started")] == [1, 2]
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest.split(":")[1]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [Path(path).name]  # no temp left


async def test_a_blob_corrupted_on_every_try_fails_the_load(registry, tmp_path: Path) -> None:
    _, port = registry
    proxy = FlipProxy("127.0.0.1", port, flips=99).start()
    client = RegistryClient(proxy.address)
    try:
        digest = await put(client, os.urandom(MiB))  # uploads pass through unflipped
        cache = BlobCache(tmp_path / "cache", client, use_registry_files=False)
        with pytest.raises(BlobCorruptError, match="digest mismatch"):
            await cache.local_file(digest, MiB)
    finally:
        await client.close()
        proxy.stop()
    assert list((tmp_path / "cache").iterdir()) == []


async def test_an_unknown_blob_is_not_found(registry, tmp_path: Path) -> None:
    client, _ = registry
    cache = BlobCache(tmp_path / "cache", client, use_registry_files=False)
    with pytest.raises(ModelNotFoundError, match="not found"):
        await cache.local_file("sha256:" + "0" * 64, 10)


async def test_lru_eviction_spares_blobs_loaded_runners_use(registry, tmp_path: Path) -> None:
    client, _ = registry
    blobs = [os.urandom(MiB) for _ in range(4)]
    digests = [await put(client, data) for data in blobs]
    cache = BlobCache(tmp_path / "cache", client, max_bytes=3 * MiB, use_registry_files=False)
    loaded: set[str] = set()
    cache.track_in_use(lambda: loaded)
    first = await cache.local_file(digests[0], MiB)
    loaded.add(first)  # a runner maps blob 0
    second = await cache.local_file(digests[1], MiB)
    third = await cache.local_file(digests[2], MiB)
    os.utime(first, (1, 1))  # oldest of all, but in use
    with structlog.testing.capture_logs() as logs:
        await cache.local_file(digests[3], MiB)
    assert [e["digest"] for e in events(logs, "blob_evicted")] == [digests[1]]
    assert Path(first).exists() and not Path(second).exists() and Path(third).exists()
    loaded.update({third, str(cache.path(digests[3]))})
    with pytest.raises(ServerBusyError, match="blob cache is full"):
        await cache.local_file(digests[1], MiB)
    with pytest.raises(ServerBusyError, match="too small"):
        await BlobCache(tmp_path / "small", client, max_bytes=10,
                        use_registry_files=False).local_file(digests[1], MiB)


async def test_a_load_whose_blob_was_evicted_fetches_it_again_before_spawning(
        registry, tmp_path: Path) -> None:
    client, _ = registry
    resolved = await tiny_model(client, tmp_path)
    cache = BlobCache(tmp_path / "cache", client, use_registry_files=False)
    local = await cache.localize(resolved)
    Path(local.model_path).unlink()  # evicted between resolve and spawn
    spawned = []

    async def spawn(spec):
        spawned.append(await asyncio.to_thread(Path(spec.model_path).read_bytes))

    spec = SimpleNamespace(model_path=local.model_path, adapters=(), projector="",
                           model_name="tiny")
    await cache.spawner(spawn)(spec)
    assert spawned == [Path(resolved.model_path).read_bytes()]


