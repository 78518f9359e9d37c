"""Registry replicas sharing one PostgreSQL (and one blob directory).

The fleet-wide write lock, the NOTIFY-driven resolve cache, and two real ``python -m registry``
processes creating and deleting one name at once without leaving a dangling row or file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.blobs import BlobStore
from registry.db import migrate, open_database, session_factory
from registry.replicas import watch_model_changes
from registry.store import ModelStore
from services.clients.registry import RegistryClient
from services.errors import CorralError, ModelNotFoundError
from services.names import parse_name
from services.pb.corral.registry.v1 import registry_pb2 as pb
from tests.e2e.server import ROOT, free_port, terminate
from tests.registry.conftest import write_tiny_gguf
from tests.registry.model_helpers import chunks_of, sha256_digest


@pytest.fixture
def postgres_only(database_backend: str) -> None:
    if database_backend != "postgres":
        pytest.skip("replicas share PostgreSQL; SQLite has one registry per file")


@asynccontextmanager
async def replica(url: str, models_dir: Path) -> AsyncIterator[ModelStore]:
    """One registry's store on the shared database and blob directory, listening for changes."""
    async with open_database(models_dir, url) as engine:
        await migrate(engine)
        store = ModelStore(session_factory(engine), BlobStore(models_dir / "blobs"))
        async with watch_model_changes(engine, store):
            yield store


async def eventually(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_the_write_lock_is_held_across_replicas(postgres_only, postgres, tmp_path: Path) -> None:
    url = postgres.create_database("lock")
    async with replica(url, tmp_path) as a, replica(url, tmp_path) as b:
        order: list[str] = []

        async def b_writes() -> None:
            async with b.write_lock:
                order.append("b")

        async with a.write_lock:
            waiting = asyncio.create_task(b_writes())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # b waits on the database, not on a's asyncio.Lock
            order.append("a")
        await asyncio.wait_for(waiting, 5)
        assert order == ["a", "b"]


async def test_a_write_on_one_replica_drops_the_cache_of_the_others(
        postgres_only, postgres, tmp_path: Path, tiny_gguf: Path) -> None:
    url = postgres.create_database("cache")
    other = write_tiny_gguf(tmp_path / "other.gguf", context_length=512)
    async with replica(url, tmp_path) as a, replica(url, tmp_path) as b:
        await a.import_gguf(parse_name("tiny"), tiny_gguf)
        cached = await b.resolve("tiny")
        assert await b.resolve("tiny") is cached  # b caches while it listens
        await a.import_gguf(parse_name("tiny"), other)

        async def b_sees_the_new_model() -> bool:
            return (await b.resolve("tiny")).record.details.context_length == 512
        await eventually(b_sees_the_new_model)
        await a.delete_model("tiny")

        async def b_sees_it_gone() -> bool:
            try:
                await b.resolve("tiny")
            except ModelNotFoundError:
                return True
            return False
        await eventually(b_sees_it_gone)


async def test_the_cache_is_off_while_the_change_feed_is_down(
        postgres_only, postgres, tmp_path: Path, tiny_gguf: Path) -> None:
    url = postgres.create_database("feed")
    async with replica(url, tmp_path) as store:
        await store.import_gguf(parse_name("tiny"), tiny_gguf)
        assert await store.resolve("tiny") is await store.resolve("tiny")
        # Kill the listening backend, as a database restart or a network cut would.
        postgres.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE query LIKE 'LISTEN%'", database=url.rsplit("/", 1)[1])

        async def cache_off() -> bool:
            return not store._cache_enabled
        await eventually(cache_off)

        async def cache_back() -> bool:
            return store._cache_enabled
        await eventually(cache_back, timeout=10)
        assert await store.resolve("tiny") is await store.resolve("tiny")


async def test_a_save_racing_a_delete_that_prunes_its_blob_never_dangles(
        postgres_only, postgres, tmp_path: Path, tiny_gguf: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Replica a deletes the only model using blob S and is slow to unlink S's file; replica b
    meanwhile saves a model using S. b must wait for a to finish (then fail cleanly, S gone),
    never commit a row pointing at S and let a delete the file under it."""
    url = postgres.create_database("prune")
    async with replica(url, tmp_path) as a, replica(url, tmp_path) as b:
        await a.import_gguf(parse_name("x"), tiny_gguf)
        content = await a.manifest_bytes("x")
        real_unlink = a.unlink_blobs

        async def slow_unlink(digests):
            await asyncio.sleep(0.5)  # the window between a's commit and its file deletions
            return await real_unlink(digests)

        monkeypatch.setattr(a, "unlink_blobs", slow_unlink)
        deleting = asyncio.create_task(a.delete_model("x"))
        await asyncio.sleep(0.1)  # a has committed or is about to; its files are still there
        with pytest.raises(CorralError, match="missing from the store"):
            await b.save_model(parse_name("y"), content)
        assert await deleting
    await assert_consistent(url, tmp_path / "blobs")


# -- two real registry processes ---------------------------------------------------------------

def start_registry(url: str, models_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    address = f"127.0.0.1:{free_port()}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CORRAL_"))},
           "OLLAMA_MODELS": str(models_dir), "CORRAL_REGISTRY_ADDR": address,
           "CORRAL_DATABASE_URL": url, "CORRAL_EMBEDDED_MODEL": "0"}
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "registry"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)
    return process, address


async def create(client: RegistryClient, name: str, **fields) -> bool:
    """Run a create; False when it failed cleanly (a concurrent delete took a blob it needed)."""
    try:
        async for _ in client.create(pb.CreateModelRequest(name=name, **fields)):
            pass
    except CorralError:
        return False
    return True


async def test_two_registry_processes_racing_on_one_name_leave_no_dangling_rows_or_files(
        postgres_only, postgres, tmp_path: Path, tiny_gguf: Path) -> None:
    url = postgres.create_database("race")
    models = tmp_path / "models"
    processes = [start_registry(url, models, tmp_path / f"registry{i}.log") for i in (1, 2)]
    clients = [RegistryClient(address) for _, address in processes]
    try:
        for client in clients:
            await client.wait_ready(60)
        data = tiny_gguf.read_bytes()
        digest = sha256_digest(data)
        await clients[0].put_blob(digest, chunks_of(data))
        assert await create(clients[0], "base", files={"tiny.gguf": digest})

        async def churn(client: RegistryClient, rounds: int) -> int:
            created = 0
            for i in range(rounds):
                # A few SYSTEM texts over and over: each delete prunes a blob that the other
                # replica's next create writes again, which is exactly the race to survive.
                created += await create(client, "x", **{"from": "base", "system": f"s{i % 3}"})
                try:
                    await client.delete("x")
                except ModelNotFoundError:
                    pass
            return created

        created = await asyncio.gather(churn(clients[0], 30), churn(clients[1], 30))
        assert sum(created) > 10  # the race was actually run, not refused wholesale
        assert await create(clients[1], "x", **{"from": "base", "system": "final"})
        for client in clients:
            assert (await client.resolve("x")).system == "final"
            assert (await client.resolve("base")).model.name == "base:latest"
    finally:
        for client in clients:
            await client.close()
        for process, _ in processes:
            terminate(process, 10)
    await assert_consistent(url, models / "blobs")


async def assert_consistent(url: str, blobs: Path) -> None:
    """No manifest without a name, no blob row without a manifest, every used blob on disk."""
    async with open_database(blobs.parent, url) as engine, engine.connect() as conn:
        async def column(sql: str) -> set[str]:
            return set((await conn.execute(text(sql))).scalars())

        orphan_manifests = await column(
            "SELECT digest FROM manifests WHERE digest NOT IN (SELECT manifest_digest FROM models)")
        used = await column("SELECT blob_digest FROM layers UNION SELECT config_digest FROM manifests")
        rows = await column("SELECT digest FROM blobs")
    assert orphan_manifests == set()
    assert rows - used == set(), "blob rows nothing references"
    assert used <= rows
    for digest in used:
        path = blobs / digest.replace(":", "-")
        assert path.is_file(), f"{digest} is referenced but its file is gone"
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
