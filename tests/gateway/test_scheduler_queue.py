"""Slots, the bounded queue, and requests that leave while they wait (fake runners).

Loads finish when a test opens their gate (``Script.loading``), keep-alive timers when it advances
the ``ManualClock``; nothing here waits a fixed time."""

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


@pytest.fixture
def make(settings):
    def build(spawner: FakeSpawner, **overrides) -> Scheduler:
        return Scheduler(dataclasses.replace(settings, **overrides), spawn=spawner,
                         clock=ManualClock())
    return build


async def test_slots_bound_concurrency_and_waiters_go_first_come_first_served(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, num_parallel=2)
    holders = [Holder(scheduler, A) for _ in range(4)]
    await holders[1].holding()
    await settle()
    (entry,) = scheduler.loaded()
    assert [h.acquired.is_set() for h in holders] == [True, True, False, False]
    assert (entry.active, entry.queued, scheduler.pending) == (2, 2, 2)
    holders[1].release()
    await holders[2].holding()
    assert not holders[3].acquired.is_set()
    for h in holders:
        h.release()
    await asyncio.gather(*(h.task for h in holders))
    assert (entry.active, entry.queued, scheduler.pending) == (0, 0, 0)
    assert len(spawner.spawned) == 1


async def test_queue_overflow_is_counted_exactly_and_answered_at_once(make):
    scheduler = make(FakeSpawner(), num_parallel=1, max_queue=2)
    active = Holder(scheduler, A)
    await active.holding()
    waiters = [Holder(scheduler, A) for _ in range(6)]
    await settle()
    failed = [h for h in waiters if h.task.done()]
    assert len(failed) == 6 - 2
    for h in failed:
        with pytest.raises(ServerBusyError, match="^server busy, please try again.  maximum"):
            h.task.result()
    assert scheduler.pending == 2
    active.release()
    for h in waiters:
        h.release()
    await asyncio.gather(*(h.task for h in waiters), return_exceptions=True)
    assert scheduler.pending == 0


async def test_waiter_that_leaves_is_forgotten(make):
    scheduler = make(FakeSpawner(), num_parallel=1, max_queue=1)
    active = Holder(scheduler, A)
    await active.holding()
    gone = Holder(scheduler, A)
    await settle()
    (entry,) = scheduler.loaded()
    assert entry.queued == 1
    gone.task.cancel()
    await asyncio.gather(gone.task, return_exceptions=True)
    assert (entry.queued, scheduler.pending) == (0, 0)
    nxt = Holder(scheduler, A)  # the queue has room again, and the freed slot goes to it
    await settle()
    active.release()
    await nxt.holding()
    await nxt.done()
    assert (entry.active, entry.refcount) == (0, 0)


async def test_client_leaving_during_its_load_aborts_the_load(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner)
    waiter = Holder(scheduler, A)
    process = await spawner.until_spawned()
    assert [e.state for e in scheduler.loaded()] == [RunnerState.LOADING]
    waiter.task.cancel()
    await asyncio.wait_for(process.wait(), 1)
    assert not scheduler.loaded() and not spawner.alive
    assert spawner.spawned[0].stop_calls == 1
    spawner.script.loading = None  # the next request loads afresh
    again = Holder(scheduler, A)
    await again.holding()
    await again.done()
    assert len(spawner.spawned) == 2


async def test_load_goes_on_while_someone_still_waits_for_it(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner)
    first, second = Holder(scheduler, A), Holder(scheduler, A)
    await spawner.until_spawned()
    first.task.cancel()
    await asyncio.gather(first.task, return_exceptions=True)
    spawner.script.loading.set()
    await second.holding()
    await second.done()
    assert len(spawner.spawned) == 1 and spawner.alive


async def test_load_is_aborted_when_everyone_waiting_for_it_leaves(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner)
    first, second = Holder(scheduler, A), Holder(scheduler, A)
    process = await spawner.until_spawned()
    first.task.cancel()
    await asyncio.gather(first.task, return_exceptions=True)
    await settle()
    assert spawner.alive  # the second still waits for it
    second.task.cancel()
    await asyncio.wait_for(process.wait(), 1)
    assert not spawner.alive and not scheduler.loaded() and scheduler.pending == 0


async def test_request_queued_behind_another_models_load_can_leave(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner)
    loading_a = Holder(scheduler, A)
    await spawner.until_spawned()
    waiting_b = Holder(scheduler, B)  # waits for the load lock: B's load has not started
    await settle()
    assert scheduler.pending == 1
    waiting_b.task.cancel()
    await asyncio.gather(waiting_b.task, return_exceptions=True)
    spawner.script.loading.set()
    await loading_a.holding()
    await loading_a.done()
    await settle()
    assert [p.spec.model_name for p in spawner.spawned] == ["a:latest"]


async def test_load_only_request_takes_no_slot(make):
    scheduler = make(FakeSpawner(), num_parallel=1)
    busy = Holder(scheduler, A)
    await busy.holding()
    await asyncio.wait_for(scheduler.load(A, 2048, 60), 1)  # does not wait for the slot
    (entry,) = scheduler.loaded()
    assert entry.keep_alive == 60
    await busy.done()


async def test_preload_pins_until_explicit_unload(make):
    spawner = FakeSpawner(Script(loading=asyncio.Event()))
    scheduler = make(spawner, keep_alive=0.01)
    task = asyncio.create_task(scheduler.preload(A, 2048))
    process = await spawner.until_spawned()
    task.cancel()  # a pinned load has no client to lose: it goes on
    await asyncio.gather(task, return_exceptions=True)
    spawner.script.loading.set()
    (entry,) = scheduler.loaded()
    await asyncio.wait_for(asyncio.shield(entry.ready), 1)
    assert entry.state is RunnerState.READY and entry.pinned
    assert entry.keep_alive == math.inf and entry.expires_at.year > 2300
    async with scheduler.acquire(A, 2048, 0.01):  # requests cannot shorten a pin
        pass
    scheduler.clock.advance(3600)
    await settle()
    assert spawner.alive and not scheduler.clock.pending
    await scheduler.unload(A.digest)
    await asyncio.wait_for(process.wait(), 1)
    assert not spawner.alive and not scheduler.loaded()


async def test_slot_waiters_start_over_when_the_runner_crashes(make):
    spawner = FakeSpawner(Script(pieces=("x",) * 100, streaming=asyncio.Event()))
    scheduler = make(spawner, num_parallel=1)
    outcome = []
    first_piece = asyncio.Event()

    async def stream() -> None:
        async with scheduler.acquire(A, 2048, None) as lease:
            outcome.append("started")
            try:
                async for _ in lease.generate(object()):
                    first_piece.set()
            except RunnerCrashedError as exc:
                outcome.append(exc.message)

    streaming = asyncio.create_task(stream())
    await asyncio.wait_for(first_piece.wait(), 1)
    waiting = Holder(scheduler, A)
    await settle()
    assert not waiting.acquired.is_set()
    spawner.spawned[0].crash(-9)
    await waiting.holding()  # served by a fresh runner
    await streaming
    assert outcome[0] == "started" and "signal SIGKILL" in outcome[1]
    assert len(spawner.spawned) == 2 and len(spawner.alive) == 1
    await waiting.done()
