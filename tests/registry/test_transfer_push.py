"""Pushing to an in-process registry: progress, HEAD skips, PATCH restarts, auth, rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.transfer.service import TransferService
from services.errors import CorralError, ModelNotFoundError
from services.names import parse_name
from tests.registry.conftest import open_store
from tests.registry.fake_oci import digest
from tests.registry.transfer_helpers import PART, fast_options, gguf_file


@pytest.fixture
def gguf_path(tmp_path: Path) -> Path:
    gguf_file(tmp_path / "model.gguf", (4 * PART + 1000) // 4)
    return tmp_path / "model.gguf"


async def push(service: TransferService, name: str) -> list:
    return [p async for p in service.push(name, insecure=True)]


async def test_push_uploads_blobs_in_ordered_parts_then_the_manifest(service, fake, remote, gguf_path):
    name = f"{remote}/library/tiny:v1"
    await service.store.import_gguf(parse_name(name), gguf_path)
    lines = await push(service, name)
    statuses = [p.status for p in lines]
    model = digest(gguf_path.read_bytes())
    assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]
    model_lines = [p for p in lines if p.digest == model]
    assert {p.status for p in model_lines} == {f"pushing {model[7:19]}"}
    assert model_lines[-1].completed == model_lines[-1].total == gguf_path.stat().st_size
    local = await service.store.manifest_bytes(name)
    assert fake.manifests[("library/tiny", "v1")] == local  # the exact local bytes
    assert fake.blobs[model] == gguf_path.read_bytes()
    patches = [h["Content-Range"] for m, p, h in fake.log if m == "PATCH"]
    assert patches[:5] == [f"{i * PART}-{min((i + 1) * PART, gguf_path.stat().st_size) - 1}"
                           for i in range(5)]


async def test_second_push_only_heads(service, fake, remote, gguf_path):
    name = f"{remote}/library/tiny:v1"
    await service.store.import_gguf(parse_name(name), gguf_path)
    await push(service, name)
    fake.log.clear()
    lines = await push(service, name)
    assert {m for m, _, _ in fake.log} == {"HEAD", "PUT"}  # HEAD per blob, PUT manifest
    blob_lines = [p for p in lines if p.digest]
    assert len(blob_lines) == 2 and all(p.completed == p.total for p in blob_lines)


async def test_failed_patch_restarts_the_blob_upload(service, fake, remote, gguf_path):
    name = f"{remote}/library/tiny:v1"
    await service.store.import_gguf(parse_name(name), gguf_path)
    fake.fail_patches = 1
    assert (await push(service, name))[-1].status == "success"
    assert [m for m, _, _ in fake.log].count("POST") == 3  # model twice (restarted), config once
    assert fake.blobs[digest(gguf_path.read_bytes())] == gguf_path.read_bytes()


async def test_push_with_bearer_token(service, fake, remote, gguf_path):
    fake.auth = "bearer"
    name = f"{remote}/library/tiny:v1"
    await service.store.import_gguf(parse_name(name), gguf_path)
    assert (await push(service, name))[-1].status == "success"
    token_requests = [p for _, p, _ in fake.log if p.startswith("/token")]
    assert len(token_requests) == 1 and "library%2Ftiny%3Apush%2Cpull" in token_requests[0]


async def test_push_of_a_missing_model(service, remote):
    lines = []
    with pytest.raises(ModelNotFoundError):
        async for progress in service.push(f"{remote}/library/absent:v1", insecure=True):
            lines.append(progress.status)
    assert lines == ["retrieving manifest", "couldn't retrieve manifest"]


async def test_registry_rejection_reaches_the_user(service, fake, remote, gguf_path):
    name = f"{remote}/library/Tiny:v1"
    await service.store.import_gguf(parse_name(name), gguf_path)
    with pytest.raises(CorralError) as excinfo:
        await push(service, name)
    assert excinfo.value.message == "push model manifest: 404: 404 page not found"


async def test_push_then_pull_keeps_the_model_id(service, fake, remote, gguf_path, tmp_path):
    name = f"{remote}/library/tiny:v1"
    record = await service.store.import_gguf(parse_name(name), gguf_path)
    await push(service, name)
    async with open_store(tmp_path / "other") as store:
        other = TransferService(store, fast_options(tmp_path))
        assert [p async for p in other.pull(name, insecure=True)][-1].status == "success"
        await other.close()
        (pulled,) = await store.list_models()
    assert pulled.digest == record.digest and pulled.details == record.details
