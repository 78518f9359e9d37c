"""Slots, the bounded queue, and requests that leave while they wait (fake runners)."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest

from gateway.scheduler import RunnerState, Scheduler
from services.errors import RunnerCrashedError, ServerBusyError
from tests.gateway.fakes import FakeSpawner, Script, model_ref

A = model_ref("a:latest", "aa" * 32)
B = model_ref("b:latest", "bb" * 32)


@pytest.fixture
def make(settings):
    def build(spawner: FakeSpawner, **overrides) -> Scheduler:
        return Scheduler(dataclasses.replace(settings, **overrides), spawn=spawner)
    return build


class Holder:
    """A request that holds a runner slot until ``release()``."""

    def __init__(self, scheduler: Scheduler, model=A, keep_alive=None) -> None:
        self.acquired = asyncio.Event()
        self._release = asyncio.Event()
        self.task = asyncio.create_task(self._run(scheduler, model, keep_alive))

    async def _run(self, scheduler, model, keep_alive) -> None:
        async with scheduler.acquire(model, 2048, keep_alive):
            self.acquired.set()
            await self._release.wait()

    def release(self) -> None:
        self._release.set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_slots_bound_concurrency_and_waiters_go_first_come_first_served(make):
    spawner = FakeSpawner()
    scheduler = make(spawner, num_parallel=2)
    holders = [Holder(scheduler) for _ in range(4)]
    await asyncio.wait_for(holders[1].acquired.wait(), 1)
    await settle()
    (entry,) = scheduler.loaded()
    assert [h.acquired.is_set() for h in holders] == [True, True, False, False]
    assert (entry.active, entry.queued, scheduler.pending) == (2, 2, 2)
    holders[1].release()
    await asyncio.wait_for(holders[2].acquired.wait(), 1)
    assert not holders[3].acquired.is_set()
    for h in holders:
        h.release()
    await asyncio.gather(*(h.task for h in holders))
    assert (entry.active, entry.queued, scheduler.pending) == (0, 0, 0)
    assert len(spawner.spawned) == 1


async def test_queue_overflow_is_counted_exactly_and_answered_at_once(make):
    scheduler = make(FakeSpawner(), num_parallel=1, max_queue=2)
    active = Holder(scheduler)
    await active.acquired.wait()
    waiters = [Holder(scheduler) for _ in range(6)]
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
    active = Holder(scheduler)
    await active.acquired.wait()
    gone = Holder(scheduler)
    await settle()
    (entry,) = scheduler.loaded()
    assert entry.queued == 1
    gone.task.cancel()
    await settle()
    assert (entry.queued, scheduler.pending) == (0, 0)
    nxt = Holder(scheduler)  # the queue has room again, and the freed slot goes to it
    await settle()
    active.release()
    await asyncio.wait_for(nxt.acquired.wait(), 1)
    nxt.release()
    await nxt.task
    assert (entry.active, entry.refcount) == (0, 0)


async def test_client_leaving_during_its_load_aborts_the_load(make):
    spawner = FakeSpawner(Script(load_delay=30))
    scheduler = make(spawner)
    waiter = Holder(scheduler)
    await asyncio.sleep(0.05)
    assert [e.state for e in scheduler.loaded()] == [RunnerState.LOADING]
    waiter.task.cancel()
    await asyncio.sleep(0.05)
    assert not scheduler.loaded() and not spawner.alive
    assert spawner.spawned[0].stop_calls == 1
    spawner.script.load_delay = 0  # the next request loads afresh
    again = Holder(scheduler)
    await asyncio.wait_for(again.acquired.wait(), 1)
    again.release()
    await again.task
    assert len(spawner.spawned) == 2


async def test_load_goes_on_while_someone_still_waits_for_it(make):
    spawner = FakeSpawner(Script(load_delay=0.2))
    scheduler = make(spawner)
    first, second = Holder(scheduler), Holder(scheduler)
    await asyncio.sleep(0.05)
    first.task.cancel()
    await asyncio.wait_for(second.acquired.wait(), 2)
    second.release()
    await second.task
    assert len(spawner.spawned) == 1 and spawner.alive


async def test_load_is_aborted_when_everyone_waiting_for_it_leaves(make):
    spawner = FakeSpawner(Script(load_delay=30))
    scheduler = make(spawner)
    first, second = Holder(scheduler), Holder(scheduler)
    await asyncio.sleep(0.05)
    first.task.cancel()
    await asyncio.sleep(0.05)
    assert spawner.alive  # the second still waits for it
    second.task.cancel()
    await asyncio.sleep(0.05)
    assert not spawner.alive and not scheduler.loaded() and scheduler.pending == 0


async def test_request_queued_behind_another_models_load_can_leave(make):
    spawner = FakeSpawner(Script(load_delay=0.3))
    scheduler = make(spawner)
    loading_a = Holder(scheduler, A)
    await asyncio.sleep(0.02)
    waiting_b = Holder(scheduler, B)  # waits for the load lock: B's load has not started
    await asyncio.sleep(0.02)
    waiting_b.task.cancel()
    await asyncio.wait_for(loading_a.acquired.wait(), 2)
    loading_a.release()
    await loading_a.task
    await asyncio.sleep(0.05)
    assert [p.spec.model_name for p in spawner.spawned] == ["a:latest"]


async def test_load_only_request_takes_no_slot(make):
    scheduler = make(FakeSpawner(), num_parallel=1)
    busy = Holder(scheduler)
    await busy.acquired.wait()
    await asyncio.wait_for(scheduler.load(A, 2048, 60), 1)  # does not wait for the slot
    (entry,) = scheduler.loaded()
    assert entry.keep_alive == 60
    busy.release()
    await busy.task


async def test_preload_pins_until_explicit_unload(make):
    spawner = FakeSpawner(Script(load_delay=0.05))
    scheduler = make(spawner, keep_alive=0.01)
    task = asyncio.create_task(scheduler.preload(A, 2048))
    await asyncio.sleep(0.01)
    task.cancel()  # a pinned load has no client to lose: it goes on
    await asyncio.sleep(0.1)
    (entry,) = scheduler.loaded()
    assert entry.state is RunnerState.READY and entry.pinned
    assert entry.keep_alive == math.inf and entry.expires_at.year > 2300
    async with scheduler.acquire(A, 2048, 0.01):  # requests cannot shorten a pin
        pass
    await asyncio.sleep(0.05)
    assert spawner.alive
    await scheduler.unload(A.digest)
    await asyncio.sleep(0.01)
    assert not spawner.alive and not scheduler.loaded()


async def test_slot_waiters_start_over_when_the_runner_crashes(make):
    spawner = FakeSpawner(Script(pieces=("x",) * 100, delay=0.01))
    scheduler = make(spawner, num_parallel=1)
    outcome = []

    async def stream() -> None:
        async with scheduler.acquire(A, 2048, None) as lease:
            outcome.append("started")
            try:
                async for _ in lease.generate(object()):
                    pass
            except RunnerCrashedError as exc:
                outcome.append(exc.message)

    streaming = asyncio.create_task(stream())
    await asyncio.sleep(0.05)
    waiting = Holder(scheduler)
    await settle()
    spawner.spawned[0].crash(-9)
    await asyncio.wait_for(waiting.acquired.wait(), 1)  # served by a fresh runner
    await streaming
    assert outcome[0] == "started" and "signal SIGKILL" in outcome[1]
    assert len(spawner.spawned) == 2 and len(spawner.alive) == 1
    waiting.release()
    await waiting.task
