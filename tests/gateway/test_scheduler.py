"""Scheduler lifecycle with fake runners: keep-alive, eviction, crashes, shutdown.

Time is a ``ManualClock``: keep-alive timers fire when a test advances it, never by sleeping."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest

from gateway.scheduler import RunnerState, Scheduler
from services.errors import RunnerCrashedError, ServerBusyError
from tests.gateway.clock import ManualClock, settle
from tests.gateway.fakes import FakeSpawner, Holder, Script, model_ref

A = model_ref("a:latest", "aa" * 32)
B = model_ref("b:latest", "bb" * 32)
C = model_ref("c:latest", "cc" * 32)


@pytest.fixture
def make(settings):
    schedulers = []

    def build(spawner: FakeSpawner, **overrides) -> Scheduler:
        scheduler = Scheduler(dataclasses.replace(settings, **overrides), spawn=spawner,
                              clock=ManualClock())
        schedulers.append(scheduler)
        return scheduler

    yield build


async def use(scheduler: Scheduler, model, keep_alive=None, num_ctx: int = 2048) -> None:
    async with scheduler.acquire(model, num_ctx, keep_alive):
        pass
    scheduler.clock.advance(1)  # the next use is later (least recently used is well defined)


async def test_keep_alive_timer_starts_when_idle(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner)
    holder = Holder(scheduler, A, keep_alive=0.05)
    await spawner.until_spawned()
    scheduler.clock.advance(0.5)  # the load takes half a second
    spawner.script.loading.set()
    lease = await holder.holding()
    assert lease.load_duration_ns == 500_000_000
    scheduler.clock.advance(10)  # busy: no timer runs
    assert spawner.alive and not scheduler.clock.pending
    await holder.done()
    assert spawner.alive and scheduler.clock.pending == [0.05]
    scheduler.clock.advance(0.05)
    await asyncio.wait_for(spawner.spawned[0].wait(), 1)
    assert not spawner.alive and not scheduler.loaded()


async def test_keep_alive_is_sticky_and_zero_unloads(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, keep_alive=0.05)
    await use(scheduler, A, keep_alive=math.inf)
    await use(scheduler, A)  # no keep_alive: the last value (forever) stays
    assert len(spawner.alive) == 1 and not scheduler.clock.pending
    (entry,) = scheduler.loaded()
    assert entry.expires_at.year > 2200
    await use(scheduler, A, keep_alive=0)
    await asyncio.wait_for(spawner.spawned[0].wait(), 1)
    assert not spawner.alive and spawner.spawned[0].stop_calls == 1


async def test_explicit_unload_waits_for_idle(make):
    spawner = FakeSpawner()
    scheduler = make(spawner)
    async with scheduler.acquire(A, 2048, None):
        await scheduler.unload(A.digest)
        await settle()
        assert spawner.alive
    await asyncio.wait_for(spawner.spawned[0].wait(), 1)
    assert not spawner.alive


async def test_max_loaded_models_evicts_least_recently_used(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, max_loaded_models=2)
    await use(scheduler, A)
    await use(scheduler, B)
    await use(scheduler, A)  # B is now least recently used
    await use(scheduler, C)
    assert {e.model.name for e in scheduler.loaded()} == {"a:latest", "c:latest"}
    assert [p.spec.model_name for p in spawner.alive] == ["a:latest", "c:latest"]


async def test_eviction_waits_while_every_runner_is_busy(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, max_loaded_models=1)
    holder = Holder(scheduler, A)
    await holder.holding()
    waiter = asyncio.create_task(use(scheduler, B))
    await settle()
    # B's own load is running (waiting for room): in service, not queued (Ollama's semantics)
    assert not waiter.done() and scheduler.pending == 0 and len(spawner.spawned) == 1
    await holder.done()
    await asyncio.wait_for(waiter, 1)
    assert [p.spec.model_name for p in spawner.alive] == ["b:latest"]


async def test_queue_overflow_raises_server_busy(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner, max_queue=1)
    first = asyncio.create_task(use(scheduler, A))  # loading A: in service
    await spawner.until_spawned()
    second = asyncio.create_task(use(scheduler, B))  # waits for the load lock: queued
    await settle()
    assert scheduler.pending == 1
    with pytest.raises(ServerBusyError, match="maximum pending requests exceeded"):
        await use(scheduler, B)
    spawner.script.loading.set()
    await asyncio.gather(first, second)


async def test_fast_path_shares_a_loading_runner(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner)
    uses = asyncio.gather(*(use(scheduler, A) for _ in range(5)))
    await spawner.until_spawned()
    await settle()
    spawner.script.loading.set()
    await uses
    assert len(spawner.spawned) == 1


async def test_smaller_num_ctx_shares_the_runner_and_larger_replaces_it(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, num_parallel=2)
    await use(scheduler, A, num_ctx=2048)
    await use(scheduler, A, num_ctx=1024)  # fits the loaded window: no reload
    assert len(spawner.spawned) == 1
    await use(scheduler, A, num_ctx=4096)  # larger: a new runner, the old one stops once idle
    await asyncio.wait_for(spawner.spawned[0].wait(), 1)
    assert [p.spec.ctx_size for p in spawner.spawned] == [2048, 4096]
    assert all(p.spec.parallel == 2 for p in spawner.spawned)
    assert [p.spec.ctx_size for p in spawner.alive] == [4096]
    assert [e.context_length for e in scheduler.loaded()] == [4096]
    await use(scheduler, A, num_ctx=2048)
    assert len(spawner.spawned) == 2


async def test_replaced_runner_finishes_its_requests_first(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, num_parallel=2)
    async with scheduler.acquire(A, 1024, None):
        await use(scheduler, A, num_ctx=2048)
        assert len(spawner.alive) == 2  # the old one still serves this request
    await asyncio.wait_for(spawner.spawned[0].wait(), 1)
    assert [p.spec.ctx_size for p in spawner.alive] == [2048]


async def test_crash_marks_runner_dead_and_next_request_respawns(make):
    spawner = FakeSpawner(Script(pieces=("x",) * 100, streaming=asyncio.Event()))
    scheduler = make(spawner)
    async with scheduler.acquire(A, 2048, None) as lease:
        stream = lease.generate(object())
        await anext(stream)
        spawner.spawned[0].crash(-9)
        with pytest.raises(RunnerCrashedError, match="signal SIGKILL"):
            async for _ in stream:
                pass
    assert lease.entry.exited.is_set() and not scheduler.loaded()
    await use(scheduler, A)
    assert len(spawner.spawned) == 2 and len(spawner.alive) == 1


async def test_crash_during_load_fails_fast_and_retries_next_time(make):
    spawner = FakeSpawner(Script(load_exit=1))
    scheduler = make(spawner)
    with pytest.raises(RunnerCrashedError, match="exit status 1"):
        await use(scheduler, A)
    assert not scheduler.loaded()
    spawner.script.load_exit = None
    await use(scheduler, A)
    assert scheduler.loaded()[0].state is RunnerState.READY


async def test_shutdown_stops_every_runner(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, keep_alive=math.inf)
    await use(scheduler, A)
    await use(scheduler, B)
    await scheduler.shutdown()
    assert not spawner.alive and all(p.client.closed for p in spawner.spawned)
