"""The runner supervisor: spawns runner processes, waits for them to load, watches them, spaces
out restarts, and stops them. It decides nothing about *when* (that is policy: admission in
``gateway.scheduler``, keep-alive in ``gateway.keep_alive``, eviction in ``gateway.eviction``).

**Where a runner crash becomes an HTTP error.** ``_watch`` notices an exit nobody asked for: the
runner is dropped at once, requests waiting for its slots start over on a fresh one, and requests
streaming from it end with ``RunnerCrashedError`` (``Lease.generate`` in ``gateway.leases`` names
the exit cause); a failed load raises ``RunnerCrashedError`` or ``RunnerUnavailableError`` to
every request waiting for it. ``gateway.middleware`` turns those into HTTP 500 / 503.

**Backoff.** A key that keeps failing (crash or failed load) waits ``CrashHistory.delay()``
(exponential, capped) before its next start; a runner that ran for a while starts the count afresh.
**Stall timer.** A load fails when the runner writes nothing for ``OLLAMA_LOAD_TIMEOUT``
(``RunnerProcess.wait_ready``), not after a total time: big models load slowly but steadily.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from gateway.load_options import LoadOptions
from gateway.leases import (BACKOFF_BASE_S, BACKOFF_MAX_S, CrashHistory, LoadedRunner, RunnerKey,
                            RunnerState)
from gateway.memory import Footprint
from gateway.model_ref import ModelRef
from gateway.observer import SchedulerObserver
from gateway.ports import Clock, MemoryProbe, RunnerProcessPort, SpawnFn
from gateway.runners import RunnerSpec, SpecMaker, describe_returncode
from services.errors import CorralError, RunnerUnavailableError
from services.settings import GatewaySettings

log = structlog.get_logger()

UNLOAD_REASONS = ("expired", "evicted", "replaced")  # a deliberate stop clears the crash count


class RunnerSupervisor:
    """Owns every runner process: ``runners`` holds the current runner of each key, ``alive``
    every entry whose process may still run (a replaced runner finishing its requests, one
    stopping). ``on_idle(entry)`` is the policy's hook for a runner that nobody uses."""

    def __init__(self, settings: GatewaySettings, spawn: SpawnFn, memory: MemoryProbe,
                 observer: SchedulerObserver, clock: Clock,
                 on_idle: Callable[[LoadedRunner], None]) -> None:
        self.settings = settings
        self.memory = memory
        self.observer = observer
        self.clock = clock
        self.backoff = (BACKOFF_BASE_S, BACKOFF_MAX_S)
        self.runners: dict[RunnerKey, LoadedRunner] = {}
        self.alive: set[LoadedRunner] = set()
        self.crashes: dict[RunnerKey, CrashHistory] = {}
        self.changed = asyncio.Event()  # a runner became idle or stopped: room may have appeared
        self._spawn = spawn
        self._specs = SpecMaker(settings)
        self._on_idle = on_idle
        self._tasks: set[asyncio.Task[Any]] = set()

    def resident(self) -> list[LoadedRunner]:
        """Runners loading or loaded (they count against the limits)."""
        return [e for e in self.alive if e.resident]

    # -- starting -------------------------------------------------------------------------------

    async def wait_backoff(self, key: RunnerKey) -> None:
        """Sleep out the restart delay of a key that keeps failing."""
        history = self.crashes.get(key)
        if history is None:
            return
        delay = history.delay(self.clock.monotonic(), *self.backoff)
        if delay > 0:
            log.info("runner_restart_backoff", digest=key[0][:12], failures=history.failures,
                     delay_s=round(delay, 2))
            await self.clock.sleep(delay)

    async def plan(self, model: ModelRef, num_ctx: int, key: RunnerKey,
                   load: LoadOptions) -> tuple[RunnerSpec, Footprint]:
        """The spec a runner for ``key`` would start with, and the memory it would take."""
        spec = self._specs.make(model, num_ctx, embedding=key[1], load=load)
        footprint = await self.memory.footprint(
            spec.model_path, spec.ctx_size * spec.parallel,
            extra_files=(spec.projector,) if spec.projector else (),
            kv_cache_type=spec.kv_cache_type, kv_bytes_per_token=model.kv_bytes_per_token)
        return spec, footprint

    def start(self, key: RunnerKey, model: ModelRef, spec: RunnerSpec, footprint: Footprint,
              num_ctx: int) -> LoadedRunner:
        """Record a new runner as the current one of ``key`` and start loading it."""
        entry = LoadedRunner(key=key, model=model.summary, spec=spec, footprint=footprint,
                             keep_alive=self.settings.keep_alive, context_length=num_ctx,
                             last_used=self.clock.monotonic())
        self.runners[key] = entry
        self.alive.add(entry)
        entry.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.observer.starting(entry)
        entry.load_task = self.background(self._load(entry))
        return entry

    async def _load(self, entry: LoadedRunner) -> None:
        started = self.clock.monotonic()
        entry.spawning = asyncio.ensure_future(self._spawn(entry.spec))
        try:
            # shielded: a cancel while the process starts must still get (and stop) the process
            entry.process = process = await asyncio.shield(entry.spawning)
            self.background(self._watch(entry, process))
            await process.wait_ready(self.settings.load_timeout)
            await self._read_info(entry, process)
        except BaseException as exc:
            await self._load_failed(entry, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        entry.state, entry.ready_at = RunnerState.READY, self.clock.monotonic()
        log.info("runner_ready", runner_pid=entry.pid, model=entry.spec.model_name,
                 load_duration_ms=round((entry.ready_at - started) * 1000, 1))
        self.observer.loaded(entry, entry.ready_at - started)
        entry.ready.set_result(None)
        if entry.refcount == 0:
            self._on_idle(entry)

    async def _read_info(self, entry: LoadedRunner, process: RunnerProcessPort) -> None:
        """What the runner really got: its context per slot, and the K/V cache type (f16 when
        the model refused the quantised one: the size estimate follows)."""
        with contextlib.suppress(CorralError):
            info = await process.client.info()
            entry.context_length = info.n_ctx_per_slot or entry.context_length
            if info.kv_cache_type and info.kv_cache_type != entry.spec.kv_cache_type:
                entry.footprint = entry.footprint.retyped(entry.spec.kv_cache_type,
                                                          info.kv_cache_type)

    async def _load_failed(self, entry: LoadedRunner, exc: BaseException) -> None:
        aborted = isinstance(exc, asyncio.CancelledError)
        error = exc if isinstance(exc, CorralError) else RunnerUnavailableError(
            "model load was cancelled" if aborted else f"failed to start llama runner: {exc}")
        if not aborted:
            self._record_failure(entry.key, None)
            log.warning("runner_load_failed", model=entry.spec.model_name, runner_pid=entry.pid,
                        error=error.message)
            self.observer.load_failed(entry)
        self.drop(entry)
        if not entry.ready.done():
            entry.ready.set_exception(error)
        await self.stop(entry, "load_aborted" if aborted else "load_failed")

    def abort_load(self, entry: LoadedRunner) -> None:
        """Give up a load nobody waits for any more (its process is stopped as it fails)."""
        log.info("load_aborted", model=entry.spec.model_name, runner_pid=entry.pid,
                 reason="no request is waiting for it")
        self.drop(entry)
        entry.state = RunnerState.STOPPING
        if entry.load_task is not None:
            entry.load_task.cancel()

    def _record_failure(self, key: RunnerKey, uptime: float | None) -> None:
        self.crashes.setdefault(key, CrashHistory()).record(uptime, self.clock.monotonic())

    # -- watching and stopping ------------------------------------------------------------------

    async def _watch(self, entry: LoadedRunner, process: RunnerProcessPort) -> None:
        """Supervise the process: an exit nobody asked for drops the runner at once."""
        returncode = await process.wait()
        if entry.stop_task is None:
            was_ready = entry.state is RunnerState.READY
            entry.state = RunnerState.EXITED
            entry.cancel_timer()
            self.drop(entry)
            entry.fail_waiters()
            log.warning("runner_exited", runner_pid=entry.pid, model=entry.spec.model_name,
                        returncode=returncode, cause=describe_returncode(returncode),
                        stderr_tail=list(process.stderr_tail))
            self.observer.crashed(entry, returncode)
            if was_ready:
                self._record_failure(entry.key, self.clock.monotonic() - (entry.ready_at or 0.0))
            entry.exited.set()
            await self.stop(entry, "exited")  # reaps it and closes the gRPC channel
        entry.exited.set()

    async def stop(self, entry: LoadedRunner, reason: str) -> None:
        """Stop ``entry``'s process once (later calls wait for the same stop)."""
        if entry.stop_task is None:
            if entry.state is not RunnerState.EXITED:
                entry.state = RunnerState.STOPPING
            entry.cancel_timer()
            self.drop(entry)
            entry.stop_task = asyncio.get_running_loop().create_task(
                self._terminate(entry, reason), context=contextvars.Context())
        await asyncio.shield(entry.stop_task)

    async def _terminate(self, entry: LoadedRunner, reason: str) -> None:
        process = entry.process
        if process is None and entry.spawning is not None:
            process = entry.process = await _spawned(entry.spawning)
        if process is not None:
            returncode = await process.stop()
            log.info("runner_stopped", runner_pid=entry.pid, model=entry.spec.model_name,
                     reason=reason, returncode=returncode)
        with contextlib.suppress(OSError):
            entry.spec.socket_path.unlink(missing_ok=True)
        self.alive.discard(entry)
        self.observer.stopped(entry, reason)
        if reason in UNLOAD_REASONS:
            self.crashes.pop(entry.key, None)
            log.info("model_unloaded", model=entry.spec.model_name, reason=reason)
        self.changed.set()

    def drop(self, entry: LoadedRunner) -> None:
        """``entry`` is no longer the runner new requests of its key get."""
        if self.runners.get(entry.key) is entry:
            del self.runners[entry.key]

    def background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task with an empty log context (it outlives the request)."""
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def shutdown(self) -> None:
        """Stop every runner (SIGTERM, then SIGKILL after the grace period)."""
        self.runners.clear()
        for entry in list(self.alive):
            entry.cancel_timer()
            entry.fail_waiters()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(self.stop(e, "shutdown") for e in list(self.alive)),
                             return_exceptions=True)
        self._specs.cleanup()


async def _spawned(spawning: asyncio.Future[RunnerProcessPort]) -> RunnerProcessPort | None:
    """The process ``spawning`` started, or None if the spawn failed or was cancelled. Waits
    without raising the spawn's own outcome, while a cancel of the caller still propagates."""
    try:
        await asyncio.wait({spawning})
    except asyncio.CancelledError:
        spawning.cancel()  # nobody would be left to stop the process it is starting
        raise
    if spawning.cancelled() or spawning.exception() is not None:
        return None
    return spawning.result()
