"""Load options (num_thread, num_batch, use_mmap, use_mlock), the K/V cache type in the size
estimate, and Ollama's OLLAMA_MAX_QUEUE semantics (a request whose load runs is in service)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.load_options import LoadOptions

from gateway.options import ModelOptions
from gateway.scheduler import Scheduler
from services.errors import ServerBusyError
from tests.gateway.clock import ManualClock, settle
from tests.gateway.fakes import FakeSpawner, Holder, KvMemory, Script, model_ref

A = model_ref("a:latest", "aa" * 32)
MB = 1024 * 1024


@pytest.fixture
def make(settings):
    def build(spawner: FakeSpawner, **overrides) -> Scheduler:
        return Scheduler(dataclasses.replace(settings, **overrides), spawn=spawner,
                         memory=KvMemory(), clock=ManualClock())
    return build


async def use(scheduler: Scheduler, load: LoadOptions = LoadOptions(), num_ctx: int = 2048):
    async with scheduler.acquire(A, num_ctx, None, load=load) as lease:
        return lease.entry


def test_only_explicit_options_are_load_options():
    merged = ModelOptions.merge({"num_thread": 1}, {"use_mmap": False, "temperature": 0},
                                num_ctx=2048)
    assert merged.load_options() == LoadOptions(num_thread=1, use_mmap=False)
    assert ModelOptions.merge({}, {}, num_ctx=2048).load_options() == LoadOptions()
    # 0 threads and a zero batch mean "automatic", as in Ollama
    assert ModelOptions.merge({}, {"num_thread": 0, "num_batch": 0},
                              num_ctx=2048).load_options() == LoadOptions()


async def test_load_options_start_the_runner_with_them(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, num_threads=2)
    await use(scheduler, LoadOptions(num_thread=1, num_batch=64, use_mmap=False, use_mlock=True))
    (process,) = spawner.spawned
    spec = process.spec
    assert (spec.threads, spec.batch_size, spec.use_mmap, spec.use_mlock) == (1, 64, False, True)
    argv = spec.argv()
    assert argv[argv.index("--threads") + 1] == "1"
    assert argv[argv.index("--batch-size") + 1] == "64"
    assert "--no-mmap" in argv and "--mlock" in argv


async def test_different_load_options_reload_and_unset_ones_share(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, num_threads=2)
    first = await use(scheduler)
    assert first.spec.threads == 2 and not first.spec.use_mlock
    assert await use(scheduler, LoadOptions(num_thread=2, use_mmap=True)) is first  # same values
    second = await use(scheduler, LoadOptions(num_thread=1))  # differs: a new runner
    assert second is not first and second.spec.threads == 1
    await asyncio.wait_for(spawner.spawned[0].wait(), 1)
    assert [p.spec.threads for p in spawner.alive] == [1]  # the old one stopped once idle
    assert await use(scheduler) is second  # unset: whatever is loaded serves it (no churn)
    third = await use(scheduler, LoadOptions(num_batch=128))
    assert third is not second and third.spec.batch_size == 128


async def test_quantised_kv_cache_shrinks_the_estimate(make):
    sizes = {}
    for kind in ("f16", "q8_0", "q4_0"):
        spawner = FakeSpawner()
        scheduler = make(spawner, kv_cache_type=kind, num_parallel=1)
        entry = await use(scheduler)
        assert entry.spec.kv_cache_type == kind
        assert entry.spec.argv()[entry.spec.argv().index("--cache-type") + 1] == kind
        sizes[kind] = entry.footprint.kv_cache
        await scheduler.shutdown()
    assert sizes == {"f16": 2048 * 1000, "q8_0": 2048 * 1000 * 34 // 64,
                     "q4_0": 2048 * 1000 * 18 // 64}


async def test_quantised_kv_cache_falls_back_to_f16_without_flash_attention(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, kv_cache_type="q8_0", flash_attention="off")
    entry = await use(scheduler)
    assert entry.spec.kv_cache_type == "f16" and entry.spec.flash_attention == "off"
    assert entry.footprint.kv_cache == 2048 * 1000


async def test_a_refused_quantised_cache_is_reported_at_its_real_size(make):
    spawner = FakeSpawner(Script(kv_cache_type="f16"))  # the model could not take q4_0
    scheduler = make(spawner, kv_cache_type="q4_0")
    entry = await use(scheduler)
    assert entry.footprint.kv_cache == 2048 * 1000


async def test_the_request_whose_load_runs_is_in_service_not_queued(make):
    """12 at once on an unloaded model, OLLAMA_MAX_QUEUE=2, one slot: Ollama answers 3."""
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner, num_parallel=1, max_queue=2)
    requests = asyncio.gather(*(use(scheduler) for _ in range(12)), return_exceptions=True)
    await spawner.until_spawned()
    await settle()
    spawner.script.loading.set()
    results = await requests
    refused = [r for r in results if isinstance(r, ServerBusyError)]
    assert len(refused) == 9 and len(results) - len(refused) == 3
    assert len(spawner.spawned) == 1 and scheduler.pending == 0


async def test_queue_wait_percentiles_are_reported(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, num_parallel=1, max_queue=50)
    holder = Holder(scheduler, A)
    await holder.holding()
    waiters = [asyncio.create_task(use(scheduler)) for _ in range(9)]
    await settle()
    assert scheduler.queue.stats()["waiting"] == 9
    scheduler.clock.advance(0.2)
    await holder.done()
    await asyncio.gather(*waiters)
    stats = scheduler.queue.stats()
    assert (stats["waiting"], stats["limit"], stats["refused"]) == (0, 50, 0)
    # the holder loaded the model at once (0 ms); the nine waited 200 ms each
    assert (stats["wait_p50_ms"], stats["wait_p99_ms"], stats["wait_max_ms"]) == (200, 200, 200)
