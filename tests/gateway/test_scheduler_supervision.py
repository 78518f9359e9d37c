"""Supervision: stall timeouts, crash causes, restart backoff, SIGTERM→SIGKILL, isolation.

Some tests run tiny stand-in runner programs as real subprocesses behind the real
``RunnerProcess``; the others use the fake spawner.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import textwrap
import time

import pytest

from gateway.leases import CrashHistory
from gateway.runners import RunnerProcess, RunnerSpec
from gateway.scheduler import RunnerState, Scheduler
from services.errors import RunnerCrashedError, RunnerUnavailableError
from tests.gateway.clock import ManualClock
from tests.gateway.fakes import FakeSpawner, Script, model_ref

A = model_ref("a:latest", "aa" * 32)
B = model_ref("b:latest", "bb" * 32)

PROGRESS = ('print(json.dumps({"event": "model_load_progress", "progress": %s, "level": "info"}),'
            ' file=sys.stderr, flush=True)')


def program_spawner(source: str, started: list | None = None, clock: ManualClock | None = None,
                    spawned: asyncio.Event | None = None):
    """A spawn factory running ``python -c source`` as the 'runner' (its stall timer on
    ``clock``, else on real time)."""
    async def spawn(spec: RunnerSpec) -> RunnerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import json, signal, sys, time\n" + textwrap.dedent(source),
            stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        if started is not None:
            started.append(process)
        if spawned is not None:
            spawned.set()
        return RunnerProcess(process, spec, clock)
    return spawn


@pytest.fixture
async def make(settings):
    """Schedulers shut down after the test, so every runner's stop (and its pipes) completes."""
    made: list[Scheduler] = []

    def build(spawn, clock: ManualClock | None = None, **overrides) -> Scheduler:
        made.append(Scheduler(dataclasses.replace(settings, **overrides), spawn=spawn,
                              clock=clock or ManualClock()))
        return made[-1]
    yield build
    for scheduler in made:
        await scheduler.shutdown()


async def use(scheduler: Scheduler, model=A) -> None:
    async with scheduler.acquire(model, 2048, None):
        pass


async def test_stalled_load_times_out_with_progress_and_is_killed(make):
    started: list = []
    source = PROGRESS % "0.3" + "\ntime.sleep(60)"
    scheduler = make(program_spawner(source, started), load_timeout=0.5)
    with pytest.raises(RunnerUnavailableError,
                       match=r"^timed out waiting for llama runner to start - progress 0\.30$"):
        await asyncio.wait_for(use(scheduler), 10)
    assert await asyncio.wait_for(started[0].wait(), 10) == -signal.SIGTERM
    assert not scheduler.loaded()


async def test_the_stall_timer_reads_the_scheduler_clock(make):
    """Silence is measured on the scheduler's clock: ten minutes of it pass in no real time, and
    the load fails at the stall timer's next poll."""
    clock, spawned = ManualClock(), asyncio.Event()
    scheduler = make(program_spawner("time.sleep(60)", clock=clock, spawned=spawned),
                     clock=clock, load_timeout=600)
    attempt = asyncio.create_task(use(scheduler))
    await asyncio.wait_for(spawned.wait(), 10)
    clock.advance(601)
    with pytest.raises(RunnerUnavailableError, match=r"^timed out waiting for llama runner"):
        await asyncio.wait_for(attempt, 10)


async def test_output_restarts_the_stall_timer(make):
    source = f"""
    for i in range(6):
        {PROGRESS % "i / 10"}
        time.sleep(0.2)
    time.sleep(60)
    """
    scheduler = make(program_spawner(source), load_timeout=0.5)
    began = time.monotonic()
    with pytest.raises(RunnerUnavailableError, match="progress 0.50"):
        await asyncio.wait_for(use(scheduler), 10)
    assert time.monotonic() - began >= 1.2  # a stall timer, not a total one


async def test_exit_during_load_names_the_status_and_the_last_error_lines(make):
    source = """
    print('{"event": "model_load_failed", "level": "error", "error": "unknown model architecture"}',
          file=sys.stderr, flush=True)
    sys.exit(3)
    """
    scheduler = make(program_spawner(source))
    with pytest.raises(RunnerCrashedError) as caught:
        await asyncio.wait_for(use(scheduler), 10)
    assert caught.value.message == ("llama runner process has terminated: exit status 3: "
                                    "model_load_failed unknown model architecture")


@pytest.mark.parametrize(("ignore_term", "expected"),
                         [(False, -signal.SIGTERM), (True, -signal.SIGKILL)])
async def test_stop_sends_sigterm_then_sigkill_after_the_grace(ignore_term, expected, tmp_path):
    ready = "print('ready', file=sys.stderr, flush=True)\n"
    source = ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "") + ready
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import signal, sys, time\n" + source + "time.sleep(60)",
        stderr=asyncio.subprocess.PIPE)
    # the handler is installed before this line is written
    assert await asyncio.wait_for(process.stderr.readline(), 10) == b"ready\n"
    runner = RunnerProcess(process, RunnerSpec("m", "/m.gguf", tmp_path / "s.sock", 512, 1, 1))
    began = time.monotonic()
    assert await runner.stop(grace=0.3) == expected
    assert (time.monotonic() - began >= 0.3) == ignore_term


async def test_crash_loop_backs_off_exponentially_without_blocking_other_models(make):
    spawner = FakeSpawner(Script(load_exit=1))
    scheduler = make(spawner)
    clock = scheduler.clock
    scheduler.supervisor.backoff = (0.3, 0.6)
    for _ in range(2):  # one crash: restart at once
        with pytest.raises(RunnerCrashedError, match="exit status 1"):
            await use(scheduler)
    for expected in (0.3, 0.6, 0.6):  # doubling per crash, capped
        attempt = asyncio.create_task(use(scheduler))
        assert await asyncio.wait_for(clock.timer_set(), 1) == expected
        assert not attempt.done()
        clock.advance(expected - 0.01)
        assert not attempt.done() and clock.pending == [0.01]
        clock.advance(0.01)
        with pytest.raises(RunnerCrashedError, match="exit status 1"):
            await asyncio.wait_for(attempt, 1)
    assert len(spawner.spawned) == 5
    spawner.script.load_exit = None
    attempt = asyncio.create_task(use(scheduler))  # still backing off...
    assert await asyncio.wait_for(clock.timer_set(), 1) == 0.6
    await asyncio.wait_for(use(scheduler, B), 1)  # ...while another model loads at once
    assert len(spawner.spawned) == 6 and not attempt.done()
    clock.advance(0.6)
    await asyncio.wait_for(attempt, 1)
    assert {e.model.name for e in scheduler.loaded()} == {"a:latest", "b:latest"}


def test_crash_history_resets_after_a_long_healthy_run():
    history = CrashHistory()
    history.record(None, now=100.0)
    assert history.delay(now=100.0) == 0
    history.record(uptime=3.0, now=110.0)
    assert history.failures == 2 and history.delay(now=110.0) == 1.0
    assert history.delay(now=110.75) == 0.25 and history.delay(now=111.0) == 0
    history.record(uptime=3600.0, now=4000.0)  # it ran fine for an hour: a fresh count
    assert history.failures == 1 and history.delay(now=4000.0) == 0


async def test_idle_crash_is_noticed_at_once_and_other_models_are_untouched(make):
    spawner = FakeSpawner()
    scheduler = make(spawner)
    await use(scheduler, A)
    await use(scheduler, B)
    a, b = spawner.spawned
    (entry_a,) = [e for e in scheduler.loaded() if e.model.name == "a:latest"]
    a.crash(-11)
    await asyncio.wait_for(entry_a.exited.wait(), 1)
    assert [e.model.name for e in scheduler.loaded()] == ["b:latest"]
    assert b.returncode is None and b.stop_calls == 0
    await use(scheduler, B)
    assert len(spawner.spawned) == 2
    (entry,) = scheduler.loaded()
    assert entry.state is RunnerState.READY
