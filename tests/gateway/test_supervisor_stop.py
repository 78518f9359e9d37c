"""Stopping a runner whose process is still starting: the spawn's failure is an outcome to
tolerate, a cancel of the stop itself is not (it must propagate)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.scheduler import Scheduler
from gateway.supervisor import _spawned
from tests.gateway.fakes import FakeSpawner, model_ref

A = model_ref("a:latest", "aa" * 32)


async def _failing() -> None:
    raise OSError("no such runner binary")


async def test_a_failed_or_cancelled_spawn_means_no_process():
    failed = asyncio.ensure_future(_failing())
    cancelled = asyncio.ensure_future(asyncio.sleep(60))
    cancelled.cancel()
    done = asyncio.ensure_future(asyncio.sleep(0, result="process"))
    assert await _spawned(failed) is None
    assert await _spawned(cancelled) is None
    assert await _spawned(done) == "process"


async def test_cancelling_the_wait_for_a_spawn_propagates_and_cancels_the_spawn():
    spawning = asyncio.ensure_future(asyncio.sleep(60))
    waiter = asyncio.ensure_future(_spawned(spawning))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)
    assert spawning.cancelled()  # nobody would be left to stop the process it starts


def spawning_task(scheduler: Scheduler) -> asyncio.Future:
    (entry,) = scheduler.supervisor.alive
    return entry.spawning


async def test_a_stop_cancelled_while_the_process_starts_is_cancelled(settings):
    """The stop task of a load abandoned mid-spawn waits for the spawn; cancelling that task
    (server shutdown) must end it, not be swallowed while it carries on stopping."""
    release, spawner = asyncio.Event(), FakeSpawner()
    started = asyncio.Event()

    async def slow_spawn(spec):
        started.set()
        await release.wait()
        return await spawner(spec)

    scheduler = Scheduler(settings, spawn=slow_spawn)

    async def use() -> None:
        async with scheduler.acquire(A, 2048, None):
            pass

    user = asyncio.ensure_future(use())
    await asyncio.wait_for(started.wait(), 5)
    user.cancel()
    with pytest.raises(asyncio.CancelledError):
        await user
    stops = [entry.stop_task for entry in scheduler.supervisor.alive if entry.stop_task is not None]
    assert len(stops) == 1
    await asyncio.sleep(0)  # let the stop task start and reach its wait for the spawn
    assert not stops[0].done() and not spawning_task(scheduler).done()
    stops[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await stops[0]
    assert stops[0].cancelled()
    await asyncio.sleep(0)
    assert spawning_task(scheduler).cancelled()
    release.set()
    await scheduler.shutdown()
