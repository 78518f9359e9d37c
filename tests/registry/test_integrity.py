"""Blob integrity: background hashing of indexed blobs, checks before a load, verify/repair."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from registry import tables
from registry.indexer import ManifestIndexer
from registry.integrity import CORRUPT, MISSING, SOUND, BlobVerifier
from registry.manifests import Manifest
from services.errors import StoredBlobCorruptError
from services.names import parse_name
from tests.ollama_store import build_library
from tests.registry.model_helpers import model_store


async def _verified(store) -> dict[str, bool]:
    async with store.sessions() as session:
        rows = (await session.scalars(select(tables.Blob))).all()
    return {row.digest: row.verified_at is not None for row in rows}


def _flip_byte(path: Path, offset: int = 100, *, keep_mtime: bool = False) -> None:
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:  # bit rot: the content changes, the metadata does not
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


async def test_blobs_written_here_count_as_verified_and_indexed_ones_are_hashed_later(
        tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "m"
    build_library(models, tiny_gguf)
    other = tmp_path / "other.gguf"
    other.write_bytes(tiny_gguf.read_bytes() + b"\0\0")
    async with model_store(models) as store:
        await store.import_gguf(parse_name("ours"), other)
        ours = set(await _verified(store))
        verifier = BlobVerifier(store)
        await ManifestIndexer(store, on_indexed=verifier.wake).sync()
        before = await _verified(store)
        worker = asyncio.create_task(verifier.run())
        for _ in range(200):
            if all((await _verified(store)).values()):
                break
            await asyncio.sleep(0.02)
        worker.cancel()
        after = await _verified(store)
    assert all(before[d] for d in ours)  # hashed as they were written
    assert not all(before.values())  # Ollama's: trusted by size at first
    assert all(after.values())


async def test_a_blob_changed_on_disk_fails_the_load_naming_its_digest(
        tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        resolved = await store.resolve("base")
        verifier = BlobVerifier(store)
        await verifier.ensure_loadable("base", resolved.manifest)  # sound
        weights = resolved.manifest.layers[0].digest
        _flip_byte(store.blobs.path(weights))
        with pytest.raises(StoredBlobCorruptError) as excinfo:
            await verifier.ensure_loadable("base", resolved.manifest)
        async with store.sessions() as session:
            row = await session.get(tables.Blob, weights)
    assert weights in excinfo.value.message and "corrupt" in excinfo.value.message
    assert row.corrupt_digest and row.corrupt_digest != weights


async def test_verify_finds_bit_rot_and_repair_quarantines_until_a_fresh_copy_arrives(
        tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await store.copy_model("base", "copy")
        manifest = Manifest.parse(await store.manifest_bytes("base"))
        weights = manifest.layers[0].digest
        verifier = BlobVerifier(store)
        _flip_byte(store.blobs.path(weights), keep_mtime=True)
        await verifier.ensure_loadable("base", manifest)  # metadata unchanged: not re-hashed
        results = [(v.digest, v.state, models) async for phase, v, models
                   in verifier.verify_all("base") if phase == "result"]
        assert sorted(results) == sorted([(weights, CORRUPT, ["base:latest", "copy:latest"]),
                                          (manifest.config.digest, SOUND,
                                           ["base:latest", "copy:latest"])])
        repaired = [v async for phase, v, _ in verifier.verify_all(repair=True)
                    if phase == "result" and v.state != SOUND]
        assert [(v.digest, v.quarantined) for v in repaired] == [(weights, True)]
        assert (tmp_path / "m/quarantine" / store.blobs.path(weights).name).is_file()
        with pytest.raises(StoredBlobCorruptError) as excinfo:
            await verifier.ensure_loadable("copy", manifest)
        assert f"blob {weights} is missing" in excinfo.value.message
        assert (await verifier.check_many([weights]))[0].state == MISSING
        await store.import_gguf(parse_name("base"), tiny_gguf)  # as a re-pull would
        await verifier.ensure_loadable("copy", manifest)
