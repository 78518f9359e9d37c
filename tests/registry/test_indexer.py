"""The manifest files as the interchange format: indexing an Ollama store, writing Ollama's
files for every change Corral makes, and following changes made by another program."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from registry import tables
from registry.indexer import ManifestIndexer
from registry.manifests import Manifest
from services.names import parse_name
from tests.ollama_store import SYSTEM_TYPE, build_library, go_encode
from tests.registry.model_helpers import blob_files, create, model_store

SMOL = "manifests/registry.ollama.ai/library/smol/latest"
CODER = "manifests/my.registry.example:5000/team/coder/v1"


async def test_an_ollama_store_is_indexed_in_place(tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "ollama"
    ollama = build_library(models, tiny_gguf, small_gguf=tiny_gguf.read_bytes() + b"\0")
    ollama.age(7200)
    before = ollama.snapshot()
    async with model_store(models) as store:
        report = await ManifestIndexer(store).sync()
        listed = {r.name.display: r for r in await store.list_models()}
        coder = await store.resolve("my.registry.example:5000/team/coder:v1")
        again = await ManifestIndexer(store).sync()
    assert sorted(report.indexed) == sorted(listed) == [
        "my.registry.example:5000/team/coder:v1", "smol:latest", "tiny:latest"]
    assert not again.changed  # a second pass finds nothing to do
    smol = (models / SMOL).read_bytes()
    assert listed["smol:latest"].digest == hashlib.sha256(smol).hexdigest()
    assert listed["smol:latest"].size == Manifest.parse(smol).size
    assert listed["smol:latest"].modified_at == datetime.fromtimestamp(
        (models / SMOL).stat().st_mtime, UTC)
    assert listed["smol:latest"].details.family == "llama"
    assert coder.system == "You are a terse coding assistant."
    assert coder.model_path == ollama.blob_path(Manifest.parse(smol).layers[0].digest)
    assert ollama.same_as(before) == before  # referenced in place: nothing copied, moved or touched


async def test_every_change_corral_makes_is_an_ollama_manifest_file(
        tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "m"
    async with model_store(models) as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await create(store, name="me/mario:v1", from_="base", system="It's-a me")
        await store.copy_model("me/mario:v1", "other.host:8080/ns/luigi:v2")
        files = {str(p.relative_to(models)): p.read_bytes()
                 for p in (models / "manifests").rglob("*") if p.is_file()}
        expected = {
            "manifests/registry.ollama.ai/library/base/latest": await store.manifest_bytes("base"),
            "manifests/registry.ollama.ai/me/mario/v1": await store.manifest_bytes("me/mario:v1"),
            "manifests/other.host:8080/ns/luigi/v2": await store.manifest_bytes("me/mario:v1"),
        }
        await store.delete_model("ME/Mario:V1")
        await store.delete_model("other.host:8080/ns/luigi:v2")
        left = sorted(str(p.relative_to(models)) for p in (models / "manifests").rglob("*"))
    assert files == expected
    assert all(content.endswith(b"}\n") for content in files.values())  # Go's json.Encoder
    assert oct((models / "manifests/registry.ollama.ai/library/base/latest").stat().st_mode
               & 0o777) == "0o644"
    assert left == ["manifests/registry.ollama.ai", "manifests/registry.ollama.ai/library",
                    "manifests/registry.ollama.ai/library/base",
                    "manifests/registry.ollama.ai/library/base/latest"]  # empty dirs pruned


async def test_changes_another_program_makes_are_followed(tmp_path: Path,
                                                          tiny_gguf: Path) -> None:
    models = tmp_path / "ollama"
    ollama = build_library(models, tiny_gguf)
    async with model_store(models) as store:
        indexer = ManifestIndexer(store)
        await indexer.sync()
        # `ollama rm coder`, then `ollama create smol` with a new system prompt.
        (models / CODER).unlink()
        smol = Manifest.parse((models / SMOL).read_bytes())
        system = ollama.blob(b"Be brief.", SYSTEM_TYPE)
        content = go_encode({"schemaVersion": 2, "mediaType": smol.media_type,
                             "config": smol.config.to_json(),
                             "layers": [*(layer.to_json() for layer in smol.layers), system]})
        (models / SMOL).write_bytes(content)
        blobs_before = blob_files(store)
        report = await indexer.sync()
        names = [r.name.display for r in await store.list_models()]
        resolved = await store.resolve("smol")
    assert report.removed == ["my.registry.example:5000/team/coder:v1"]
    assert report.indexed == ["smol:latest"]
    assert names == ["smol:latest"] and resolved.system == "Be brief."
    assert blob_files(store) == blobs_before  # dropping rows never deletes files


async def test_rows_without_a_file_get_one_and_unreadable_files_are_left_alone(
        tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "m"
    async with model_store(models) as store:
        await store.import_gguf(parse_name("legacy"), tiny_gguf)
        await store.import_gguf(parse_name("torn"), tiny_gguf)
        legacy = models / "manifests/registry.ollama.ai/library/legacy/latest"
        torn = models / "manifests/registry.ollama.ai/library/torn/latest"
        content = legacy.read_bytes()
        legacy.unlink()  # as if written by a Corral from before store interop
        async with store.sessions.begin() as session:
            await session.execute(update(tables.Model).values(file_digest=None).where(
                tables.Model.model == "legacy"))
        torn.write_bytes(b'{"schemaVersion":')  # a write in progress by another program
        missing = models / "manifests/registry.ollama.ai/library/ghost/latest"
        missing.parent.mkdir()
        ghost = Manifest.parse(content)
        missing.write_bytes(go_encode({
            "schemaVersion": 2, "mediaType": ghost.media_type, "config": ghost.config.to_json(),
            "layers": [{**ghost.layers[0].to_json(), "digest": "sha256:" + "0" * 64}]}))
        report = await ManifestIndexer(store).sync()
        names = sorted(r.name.display for r in await store.list_models())
    assert report.exported == ["legacy:latest"] and legacy.read_bytes() == content
    assert names == ["legacy:latest", "torn:latest"]  # torn's row kept while its file is torn
    assert set(report.skipped) == {str(torn), str(missing)}


async def test_the_tree_is_watched(tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "ollama"
    async with model_store(models) as store:
        watcher = asyncio.create_task(ManifestIndexer(store).watch(interval=0.05))
        try:
            build_library(models, tiny_gguf)  # Ollama pulls while Corral runs
            for _ in range(100):
                if len(await store.list_models()) == 2:
                    break
                await asyncio.sleep(0.05)
            (models / CODER).unlink()
            for _ in range(100):
                if len(await store.list_models()) == 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            watcher.cancel()
        names = [r.name.display for r in await store.list_models()]
    assert names == ["smol:latest"]
    assert os.path.exists(models / SMOL)
