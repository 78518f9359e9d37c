"""Copy, delete, pruning (and OLLAMA_NOPRUNE), blob uploads, concurrency and crash safety."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.lifecycle import put_blob, prune_at_startup, stat_blob
from registry.manifests import Manifest
from services.errors import (BlobCorruptError, InvalidModelNameError, InvalidRequestError,
                             ModelNotFoundError)
from services.names import parse_name
from tests.ollama_store import build_library
from tests.registry.model_helpers import (blob_files, chunks_of, create, model_store,
                                          sha256_digest)

ROOT = Path(__file__).resolve().parents[2]


async def _digests(store, name: str) -> set[str]:
    manifest = Manifest.parse(await store.manifest_bytes(name))
    return {manifest.config.digest, *(layer.digest for layer in manifest.layers)}


async def test_copy_shares_the_manifest_and_survives_deleting_the_source(
        tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await create(store, name="mario", from_="base", system="It's-a me")
        source = await store.manifest_bytes("mario")
        await store.copy_model("MARIO", "me/luigi:v2")
        assert await store.manifest_bytes("me/luigi:v2") == source
        await store.copy_model("mario", "mario")  # same name: nothing happens
        assert await store.delete_model("mario") == []  # everything still used by the copy
        copy = await store.resolve("me/luigi:v2")
        names = [r.name.display for r in await store.list_models()]
        files = blob_files(store)
    assert sorted(names) == ["base:latest", "me/luigi:v2"]
    assert copy.system == "It's-a me" and copy.model_path.is_file()
    manifest = Manifest.parse(source)
    assert {manifest.config.digest, *(layer.digest for layer in manifest.layers)} <= files


@pytest.mark.parametrize(("source", "destination", "error", "message"), [
    ("bad name!", "x", InvalidModelNameError, 'source "bad name!" is invalid'),
    ("base", "../x", InvalidModelNameError, 'destination "../x" is invalid'),
    ("base", "", InvalidModelNameError, 'destination "" is invalid'),
    ("nope", "x", ModelNotFoundError, 'model "nope" not found'),
])
async def test_copy_errors(tmp_path: Path, tiny_gguf: Path, source: str, destination: str,
                           error: type, message: str) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        with pytest.raises(error) as excinfo:
            await store.copy_model(source, destination)
    assert excinfo.value.message == message


async def test_delete_prunes_only_unreferenced_blobs(tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m", noprune=True) as store:  # noprune: deletes still prune
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await create(store, name="a", from_="base", system="shared", parameters={"top_k": 1.0})
        await create(store, name="b", from_="base", system="shared", parameters={"top_k": 2.0})
        base, a, b = [await _digests(store, n) for n in ("base", "a", "b")]
        pruned = await store.delete_model("A")
        assert set(pruned) == a - b - base and len(pruned) == 1  # a's params blob only
        assert blob_files(store) == base | b
        pruned = await store.delete_model("b")
        assert set(pruned) == b - base and blob_files(store) == base
        with pytest.raises(ModelNotFoundError) as excinfo:
            await store.delete_model("b")
        assert excinfo.value.message == "model 'b' not found"
        with pytest.raises(InvalidModelNameError) as excinfo:
            await store.delete_model("a b")
        assert excinfo.value.message == 'name "a b" is invalid'
        assert [r.name.display for r in await store.list_models()] == ["base:latest"]


@pytest.mark.parametrize("noprune", [False, True])
async def test_recreating_a_name_prunes_its_old_layers_unless_noprune(
        tmp_path: Path, tiny_gguf: Path, noprune: bool) -> None:
    async with model_store(tmp_path / "m", noprune=noprune) as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await create(store, name="m", from_="base", system="old")
        old = await _digests(store, "m")
        await create(store, name="M", from_="base", system="new")
        new = await _digests(store, "m")
        files = blob_files(store)
    gone = old - new
    assert len(gone) == 1
    assert (gone <= files) is noprune and new <= files


async def test_concurrent_creates_of_one_name_end_with_one_consistent_winner(
        tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        results = await asyncio.gather(
            *(create(store, name="race", from_="base", system=f"writer {i}",
                     parameters={"seed": float(i)}) for i in range(4)))
        models = [r.name.display for r in await store.list_models()]
        winner = await store.resolve("race")
        files = blob_files(store)
        manifests = await _manifest_count(store)
    assert all(r[-1] == {"status": "success"} for r in results)
    assert sorted(models) == ["base:latest", "race:latest"]
    assert winner.system == f"writer {winner.parameters['seed']}"
    assert await _digests(store, "race") <= files
    assert manifests == 2  # the losers' manifests were released with their blobs
    assert len(files) == len(await _digests(store, "race") | await _digests(store, "base"))


async def _manifest_count(store) -> int:
    from sqlalchemy import func, select

    from registry import tables
    async with store.sessions() as session:
        return await session.scalar(select(func.count()).select_from(tables.Manifest))


async def test_put_blob_verifies_and_leaves_nothing_behind_on_mismatch(tmp_path: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        data = os.urandom(300_000)
        digest = sha256_digest(data)
        wrong = sha256_digest(b"something else")
        with pytest.raises(BlobCorruptError) as excinfo:
            await put_blob(store.blobs, wrong, chunks_of(data))
        assert excinfo.value.message == f'digest mismatch, expected "{wrong}", got "{digest}"'
        assert list(store.blobs.root.iterdir()) == []
        assert await put_blob(store.blobs, digest, chunks_of(data)) == (True, len(data))
        assert await put_blob(store.blobs, digest.replace(":", "-"), chunks_of(b"")) == (
            False, len(data))
        stat = await stat_blob(store.blobs, digest)
        assert stat.exists and stat.size == len(data) and stat.path.read_bytes() == data
        assert not (await stat_blob(store.blobs, wrong)).exists


async def test_interrupted_upload_leaves_no_temp_file(tmp_path: Path) -> None:
    async def broken():
        yield b"x" * 10_000
        raise ConnectionResetError("client went away")

    async with model_store(tmp_path / "m") as store:
        with pytest.raises(ConnectionResetError):
            await put_blob(store.blobs, sha256_digest(b"x"), broken())
        assert list(store.blobs.root.iterdir()) == []


@pytest.mark.parametrize("digest", [
    "../../corral.db", "sha256:../../corral.db", "sha256-" + "A" * 64, "sha256:" + "0" * 63,
    "sha512:" + "0" * 64, "sha256:" + "0" * 64 + "/../x", "",
])
async def test_digests_never_reach_outside_the_blob_directory(tmp_path: Path,
                                                              digest: str) -> None:
    async with model_store(tmp_path / "m") as store:
        calls = (stat_blob(store.blobs, digest), put_blob(store.blobs, digest, chunks_of(b"x")))
        for call in calls:
            with pytest.raises(InvalidRequestError) as excinfo:
                await call
            assert excinfo.value.message == "invalid digest format"


async def test_startup_prune_removes_old_unreferenced_blobs(tmp_path: Path,
                                                            tiny_gguf: Path) -> None:
    hour_ago = time.time() - 3700
    for noprune in (True, False):
        async with model_store(tmp_path / "m", noprune=noprune) as store:
            await store.import_gguf(parse_name("base"), tiny_gguf)
            kept = await _digests(store, "base")
            old, young = sha256_digest(b"old"), sha256_digest(b"young")
            for data, digest in ((b"old", old), (b"young", young)):
                await put_blob(store.blobs, digest, chunks_of(data))
            for digest in (old, *kept):
                os.utime(store.blobs.path(digest), (hour_ago, hour_ago))
            pruned = await prune_at_startup(store)
            files = blob_files(store)
        assert pruned == ([] if noprune else [old])
        assert files == kept | {young} | ({old} if noprune else set())


def test_a_killed_writer_leaves_a_temp_file_that_the_next_start_removes(
        tmp_path: Path, database_backend: str) -> None:
    """SIGKILL a process mid-upload, then start the registry on the same directory."""
    models = tmp_path / "models"
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from registry.blobs import BlobStore\n"
        "async def slow():\n"
        "    yield b'x' * 65536\n"
        "    print('writing', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        f"asyncio.run(BlobStore(Path({str(models / 'blobs')!r})).write_stream("
        f"'sha256:{'0' * 64}', slow()))\n")
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"writing"
        temp_files = [p for p in (models / "blobs").iterdir() if p.name.startswith(".tmp-")]
        assert len(temp_files) == 1
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert temp_files[0].exists()  # the kill left it behind

    from registry.server import running_registry
    from services.settings import RegistrySettings

    async def start_and_stop() -> None:
        settings = RegistrySettings(models_dir=models, address="127.0.0.1:0",
                                    embedded_model=False)
        async with running_registry(settings):
            pass

    if database_backend == "postgres":  # replicas share the directory: a young temp file may
        asyncio.run(start_and_stop())    # be another replica's write in progress, so it stays
        assert temp_files[0].exists()
        os.utime(temp_files[0], (time.time() - 7200,) * 2)
    asyncio.run(start_and_stop())
    assert list((models / "blobs").iterdir()) == []


# An Ollama store shared with Corral (OLLAMA_MODELS pointed at ~/.ollama/models).
async def test_startup_prune_never_touches_blobs_an_ollama_manifest_uses(
        tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "ollama"
    ollama = build_library(models, tiny_gguf, small_gguf=tiny_gguf.read_bytes() + b"\0")
    orphan = ollama.blob(b"nothing names me", "application/vnd.ollama.image.system")
    ollama.age(3 * 3600)
    kept = ollama.snapshot([p for p in ollama.files() if orphan["digest"][7:] not in p.name])
    async with model_store(models) as store:
        pruned = await prune_at_startup(store)
    assert pruned == [orphan["digest"]]  # Ollama would prune it too
    assert ollama.same_as(kept) == kept
    assert not ollama.blob_path(orphan["digest"]).exists()


async def test_startup_prune_is_skipped_while_any_manifest_file_is_unreadable(
        tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "ollama"
    ollama = build_library(models, tiny_gguf)
    orphan = ollama.blob(b"nothing names me", "application/vnd.ollama.image.system")
    bad = models / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'{"schemaVersion":2,"layers":[')  # torn write
    ollama.age(3 * 3600)
    before = ollama.snapshot()
    async with model_store(models) as store:
        assert await prune_at_startup(store) == []
    assert ollama.same_as(before) == before
    assert ollama.blob_path(orphan["digest"]).exists()  # even what a full prune would remove


async def test_deleting_a_corral_model_keeps_blobs_an_ollama_manifest_shares(
        tmp_path: Path, tiny_gguf: Path) -> None:
    models = tmp_path / "ollama"
    ollama = build_library(models, tiny_gguf)
    before = ollama.snapshot()
    async with model_store(models) as store:
        await store.import_gguf(parse_name("mine"), tiny_gguf)  # same weights as smol
        mine = await _digests(store, "mine")
        pruned = await store.delete_model("mine")
        files = blob_files(store)
    weights = Manifest.parse((models / "manifests/registry.ollama.ai/library/smol/latest")
                             .read_bytes()).layers[0].digest
    assert weights in mine and weights not in pruned and weights in files
    assert set(pruned) == mine - {weights}  # our own config blob went
    assert ollama.same_as(before) == before
