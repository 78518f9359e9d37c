"""Runner lifecycle for the Scheduler: start, load, make room, supervise and stop processes.

``RunnerLifecycle`` is the half of ``gateway.scheduler.Scheduler`` that deals with processes; the
other half admits requests (slots, the queue, keep-alive). They share the scheduler's records:
``_runners`` (the current runner of each key), ``_alive`` (every entry whose process may still
run), ``_crashes``, ``_tasks`` and the ``_changed`` event, all set up in ``Scheduler.__init__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from gateway.load_options import LoadOptions
from gateway.loaded import CrashHistory, LoadedRunner, RunnerKey, RunnerState, eviction_candidate
from gateway.memory import Footprint, shortfall
from gateway.model_ref import ModelRef
from gateway.observer import SchedulerObserver
from gateway.ports import MemoryProbe, SpawnFn
from gateway.runners import SpecMaker, describe_returncode
from services.errors import CorralError, RunnerUnavailableError
from services.settings import GatewaySettings

log = structlog.get_logger()


class RunnerLifecycle:
    """Process lifecycle of the runners (mixed into the Scheduler)."""

    settings: GatewaySettings
    memory: MemoryProbe
    observer: SchedulerObserver
    _spawn: SpawnFn
    _specs: SpecMaker
    _runners: dict[RunnerKey, LoadedRunner]
    _alive: set[LoadedRunner]
    _crashes: dict[RunnerKey, CrashHistory]
    _tasks: set[asyncio.Task]
    _changed: asyncio.Event

    def _on_idle(self, entry: LoadedRunner) -> None:
        raise NotImplementedError

    # -- loading --------------------------------------------------------------------------------

    async def _wait_backoff(self, key: RunnerKey) -> None:
        history = self._crashes.get(key)
        delay = history.delay(*self.backoff) if history else 0.0
        if delay > 0:
            log.info("runner_restart_backoff", digest=key[0][:12], failures=history.failures,
                     delay_s=round(delay, 2))
            await asyncio.sleep(delay)

    async def _start(self, key: RunnerKey, model: ModelRef, num_ctx: int,
                     load: LoadOptions) -> LoadedRunner:
        spec = self._specs.make(model, num_ctx, embedding=key[1], load=load)
        footprint = await self.memory.footprint(
            spec.model_path, spec.ctx_size * spec.parallel,
            extra_files=(spec.projector,) if spec.projector else (),
            kv_cache_type=spec.kv_cache_type)
        await self._make_room(footprint, spec.model_name)
        if (old := self._runners.get(key)) is not None:
            self._retire(old, load)
        entry = LoadedRunner(key=key, model=model.summary, spec=spec, footprint=footprint,
                             keep_alive=self.settings.keep_alive, context_length=num_ctx)
        self._runners[key] = entry
        self._alive.add(entry)
        entry.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.observer.starting(entry)
        entry.load_task = self._background(self._load(entry))
        return entry

    def _retire(self, old: LoadedRunner, load: LoadOptions) -> None:
        """A runner with a larger context or other load options replaces ``old`` (it stops
        once idle)."""
        log.info("runner_replaced", model=old.spec.model_name, runner_pid=old.pid,
                 old_num_ctx=old.spec.ctx_size, changed=load.differences(old.spec))
        self._drop(old)
        old.retired = True
        if old.refcount == 0:
            self._on_idle(old)

    async def _make_room(self, need: Footprint, model: str) -> None:
        """Evict idle runners (LRU, pinned last) until one more fits; wait while all are busy."""
        while True:
            resident = [e for e in self._alive if e.resident]
            short = shortfall(need, self.memory.available(), [e.footprint for e in resident])
            full = len(resident) >= self.settings.max_loaded_models
            if not full and short <= 0:
                return
            if victim := eviction_candidate(resident):
                because = "model_limit" if full else "memory"
                log.info("model_evicting", model=victim.spec.model_name, for_model=model,
                         because=because, short_bytes=max(short, 0))
                self.observer.evicting(victim, because)
                await self._stop(victim, "evicted")
            elif not resident:
                log.warning("memory_estimate_exceeds_available", model=model,
                            need_bytes=need.total, short_bytes=short)
                return
            else:
                self._changed.clear()
                await self._changed.wait()

    async def _load(self, entry: LoadedRunner) -> None:
        started = time.monotonic()
        entry.spawning = asyncio.ensure_future(self._spawn(entry.spec))
        try:
            # shielded: a cancel while the process starts must still get (and stop) the process
            entry.process = await asyncio.shield(entry.spawning)
            self._background(self._watch(entry))
            await entry.process.wait_ready(self.settings.load_timeout)
            await self._read_info(entry)
        except BaseException as exc:
            await self._load_failed(entry, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        entry.state, entry.ready_at = RunnerState.READY, time.monotonic()
        log.info("runner_ready", runner_pid=entry.pid, model=entry.spec.model_name,
                 load_duration_ms=round((entry.ready_at - started) * 1000, 1))
        self.observer.loaded(entry, entry.ready_at - started)
        entry.ready.set_result(None)
        if entry.refcount == 0:
            self._on_idle(entry)

    async def _read_info(self, entry: LoadedRunner) -> None:
        """What the runner really got: its context per slot, and the K/V cache type (f16 when
        the model refused the quantised one: the size estimate follows)."""
        with contextlib.suppress(CorralError):
            info = await entry.process.client.info()
            entry.context_length = info.n_ctx_per_slot or entry.context_length
            if info.kv_cache_type and info.kv_cache_type != entry.spec.kv_cache_type:
                entry.footprint = entry.footprint.retyped(entry.spec.kv_cache_type,
                                                          info.kv_cache_type)

    async def _load_failed(self, entry: LoadedRunner, exc: BaseException) -> None:
        aborted = isinstance(exc, asyncio.CancelledError)
        error = exc if isinstance(exc, CorralError) else RunnerUnavailableError(
            "model load was cancelled" if aborted else f"failed to start llama runner: {exc}")
        if not aborted:
            self._crashes.setdefault(entry.key, CrashHistory()).record(None)
            log.warning("runner_load_failed", model=entry.spec.model_name, runner_pid=entry.pid,
                        error=error.message)
            self.observer.load_failed(entry)
        self._drop(entry)
        if not entry.ready.done():
            entry.ready.set_exception(error)
        await self._stop(entry, "load_aborted" if aborted else "load_failed")

    # -- supervision and stopping ---------------------------------------------------------------

    async def _watch(self, entry: LoadedRunner) -> None:
        """Supervise the process: an exit nobody asked for drops the runner at once."""
        returncode = await entry.process.wait()
        if entry.stop_task is None:
            was_ready = entry.state is RunnerState.READY
            entry.state = RunnerState.EXITED
            entry.cancel_timer()
            self._drop(entry)
            entry.fail_waiters()
            log.warning("runner_exited", runner_pid=entry.pid, model=entry.spec.model_name,
                        returncode=returncode, cause=describe_returncode(returncode),
                        stderr_tail=list(entry.process.stderr_tail))
            self.observer.crashed(entry, returncode)
            if was_ready:
                uptime = time.monotonic() - (entry.ready_at or 0.0)
                self._crashes.setdefault(entry.key, CrashHistory()).record(uptime)
            entry.exited.set()
            await self._stop(entry, "exited")  # reaps it and closes the gRPC channel
        entry.exited.set()

    async def _stop(self, entry: LoadedRunner, reason: str) -> None:
        """Stop ``entry``'s process once (later calls wait for the same stop)."""
        if entry.stop_task is None:
            if entry.state is not RunnerState.EXITED:
                entry.state = RunnerState.STOPPING
            entry.cancel_timer()
            self._drop(entry)
            entry.stop_task = asyncio.get_running_loop().create_task(
                self._terminate(entry, reason), context=contextvars.Context())
        await asyncio.shield(entry.stop_task)

    async def _terminate(self, entry: LoadedRunner, reason: str) -> None:
        process = entry.process
        if process is None and entry.spawning is not None:
            with contextlib.suppress(BaseException):
                process = entry.process = await entry.spawning
        if process is not None:
            returncode = await process.stop()
            log.info("runner_stopped", runner_pid=entry.pid, model=entry.spec.model_name,
                     reason=reason, returncode=returncode)
        with contextlib.suppress(OSError):
            entry.spec.socket_path.unlink(missing_ok=True)
        self._alive.discard(entry)
        self.observer.stopped(entry, reason)
        if reason in ("expired", "evicted", "replaced"):
            self._crashes.pop(entry.key, None)
            log.info("model_unloaded", model=entry.spec.model_name, reason=reason)
        self._changed.set()

    def _drop(self, entry: LoadedRunner) -> None:
        if self._runners.get(entry.key) is entry:
            del self._runners[entry.key]

    def _background(self, coro: Awaitable[Any]) -> asyncio.Task:
        """Run ``coro`` as a task with an empty log context (it outlives the request)."""
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
