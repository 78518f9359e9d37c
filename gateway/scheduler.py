"""The Scheduler: owns every runner's lifecycle (Ollama ``server/sched.go``).

* **One runner per (manifest digest, embedding mode)** (embeddings get their own ``--embedding``
  runner). A request whose ``num_ctx`` fits the loaded context shares the runner; a larger one
  retires it (it stops once idle) and loads a bigger one.
* **Slots.** A runner serves ``OLLAMA_NUM_PARALLEL`` requests at once (decoded together in one
  batch); more wait for a slot here, first come first served.
* **Queue.** A request that cannot start at once (it waits for a load, a slot or a restart
  backoff) is pending; beyond ``OLLAMA_MAX_QUEUE`` pending requests the next one gets 503 at
  once. A request that leaves while pending is forgotten, and a load nobody waits for any more is
  aborted (unless it is a preload). Loads run one at a time, as Ollama's do.
* **keep_alive** is sticky (the last request that set it wins); the timer starts when the last
  request detaches. Preloaded (``CORRAL_PRELOAD``) runners are pinned: forever, whatever requests
  say, until an explicit unload.
* **Limits.** ``OLLAMA_MAX_LOADED_MODELS`` and available memory (``gateway/memory.py``): idle
  runners are evicted least recently used first, pinned ones last (Ollama evicts the shortest
  keep_alive first; LRU keeps the model you are using warm). If every runner is busy the load
  waits; with nothing left to evict it goes ahead, with a warning.
* **Supervision.** A task awaits each process: an exit nobody asked for drops the runner at once,
  requests streaming from it end with the exit cause, requests waiting for its slots start over on
  a fresh runner. A key that keeps failing (crash or failed load) waits ``CrashHistory.delay()``
  (exponential) before its next start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from gateway.loaded import (BACKOFF_BASE_S, BACKOFF_MAX_S, FOREVER_DELTA, CrashHistory, Lease,
                            LoadedRunner, RunnerGone, RunnerKey, RunnerState,
                            eviction_candidate)
from gateway.memory import Footprint, SystemMemory, shortfall
from gateway.observer import SchedulerObserver
from gateway.runners import RunnerSpec, SpecMaker, describe_returncode, spawn_runner
from services.errors import CorralError, RunnerUnavailableError, ServerBusyError
from services.settings import FOREVER, MAX_DURATION_S, GatewaySettings

__all__ = ["FOREVER_DELTA", "QUEUE_FULL", "Lease", "LoadedRunner", "RunnerState", "Scheduler"]

log = structlog.get_logger()

QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"

SpawnFn = Callable[[RunnerSpec], Awaitable[Any]]


class Scheduler:
    """Starts, shares, expires, evicts, supervises and stops runner processes."""

    def __init__(self, settings: GatewaySettings, spawn: SpawnFn = spawn_runner,
                 memory: Any = None, observer: SchedulerObserver | None = None) -> None:
        self.settings = settings
        self.memory = memory or SystemMemory()
        self.observer = observer or SchedulerObserver()  # metrics (gateway/metrics.py)
        self.backoff = (BACKOFF_BASE_S, BACKOFF_MAX_S)
        self._spawn = spawn
        self._runners: dict[RunnerKey, LoadedRunner] = {}  # the current runner of each key
        self._alive: set[LoadedRunner] = set()  # every entry whose process may still run
        self._crashes: dict[RunnerKey, CrashHistory] = {}
        self._wanted: collections.Counter[RunnerKey] = collections.Counter()
        self._tasks: set[asyncio.Task] = set()
        self._pending = 0
        self._closing = False
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._specs = SpecMaker(settings)

    # -- requests -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, resolved: Any, num_ctx: int, keep_alive: float | None, *,
                      embedding: bool = False) -> AsyncIterator[Lease]:
        """Hold a slot of a ready runner for ``resolved`` (a ResolveModelResponse) for the block.

        ``embedding`` asks for a runner started with ``--embedding`` (a separate process).
        Raises ``ServerBusyError`` at once when the request would have to wait and
        ``OLLAMA_MAX_QUEUE`` requests already do.
        """
        started = time.monotonic_ns()
        with self.observer.request(resolved.model.name) as tracker:
            entry = await self._claim(resolved, num_ctx, keep_alive, embedding=embedding, slot=True)
            waited_ns = time.monotonic_ns() - started
            tracker.started(waited_ns)
            try:
                yield Lease(entry, waited_ns, tracker)
            finally:
                entry.free_slot()
                self._detach(entry)

    async def load(self, resolved: Any, num_ctx: int, keep_alive: float | None, *,
                   embedding: bool = False) -> None:
        """Load the model (or keep it loaded) without taking a slot: ``done_reason: load``."""
        self._detach(await self._claim(resolved, num_ctx, keep_alive, embedding=embedding,
                                       slot=False))

    async def preload(self, resolved: Any, num_ctx: int) -> None:
        """Load and pin (``CORRAL_PRELOAD``): keep_alive forever, not aborted without waiters."""
        self._detach(await self._claim(resolved, num_ctx, FOREVER, embedding=False, slot=False,
                                       pin=True))

    async def unload(self, digest: str) -> None:
        """Unload every runner of this model as soon as it is idle (``keep_alive: 0``)."""
        for entry in [e for e in self._alive if e.key[0] == digest and e.resident]:
            entry.keep_alive, entry.pinned = 0, False
            if entry.refcount == 0:
                self._on_idle(entry)

    def loaded(self) -> list[LoadedRunner]:
        """Runners that are loading or loaded (what /api/ps shows)."""
        return [e for e in self._alive if e.resident]

    @property
    def pending(self) -> int:
        """Requests waiting for a load, a slot or a restart backoff."""
        return self._pending

    def run_in_background(self, coro: Awaitable[Any]) -> asyncio.Task:
        """Run ``coro`` as a task the scheduler cancels on shutdown."""
        return self._background(coro)

    async def shutdown(self) -> None:
        """Stop every runner (SIGTERM, then SIGKILL after the grace period)."""
        self._closing = True
        self._runners.clear()
        for entry in list(self._alive):
            entry.cancel_timer()
            entry.fail_waiters()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(self._stop(e, "shutdown") for e in list(self._alive)),
                             return_exceptions=True)
        self._specs.cleanup()

    # -- claiming a runner and a slot -----------------------------------------------------------

    async def _claim(self, resolved: Any, num_ctx: int, keep_alive: float | None, *,
                     embedding: bool, slot: bool, pin: bool = False) -> LoadedRunner:
        """An attached, ready runner (holding a slot when ``slot``)."""
        key = (resolved.model.digest, embedding)
        entry = self._usable(key, num_ctx)
        if entry and entry.state is RunnerState.READY and (not slot or entry.has_free_slot()):
            self._attach(entry, keep_alive, pin)  # fast path: never queued
            entry.active += slot
            return entry
        if self._pending >= self.settings.max_queue:
            raise ServerBusyError(QUEUE_FULL)
        self._pending += 1
        try:
            while True:
                self._check_open()
                entry = await self._ready_entry(key, resolved, num_ctx, keep_alive, pin)
                try:
                    if slot:
                        await entry.take_slot()
                    return entry
                except RunnerGone:  # it exited before our turn: start over on a fresh one
                    self._detach(entry)
                except BaseException:
                    self._detach(entry)
                    raise
        finally:
            self._pending -= 1

    def _check_open(self) -> None:
        if self._closing:
            raise RunnerUnavailableError("server is shutting down")

    def _usable(self, key: RunnerKey, num_ctx: int) -> LoadedRunner | None:
        """The current runner of ``key`` if its context per slot is at least ``num_ctx``."""
        entry = self._runners.get(key)
        if entry is None or not entry.resident or entry.spec.ctx_size < num_ctx:
            return None
        return entry

    async def _ready_entry(self, key: RunnerKey, resolved: Any, num_ctx: int,
                           keep_alive: float | None, pin: bool) -> LoadedRunner:
        """Attach to the runner of ``key``, loading one first when there is none that fits."""
        entry = self._usable(key, num_ctx)
        if entry is None:
            self._wanted[key] += 1  # keeps a load of this key alive while we queue for the lock
            wanted = True
            try:
                await self._wait_backoff(key)
                async with self._load_lock:  # one load at a time, as Ollama does
                    self._check_open()
                    entry = self._usable(key, num_ctx) or await self._start(key, resolved, num_ctx)
                    self._attach(entry, keep_alive, pin)
                    self._unwant(key)
                    wanted = False
                    await self._wait_ready(entry)
                    return entry
            finally:
                if wanted:
                    self._unwant(key)
        self._attach(entry, keep_alive, pin)
        await self._wait_ready(entry)
        return entry

    def _unwant(self, key: RunnerKey) -> None:
        """One request fewer queued for a load of ``key``; the last one to leave may abort it."""
        self._wanted[key] -= 1
        if self._wanted[key] == 0:
            del self._wanted[key]
            entry = self._runners.get(key)
            if entry and entry.refcount == 0 and entry.state is RunnerState.LOADING:
                self._on_idle(entry)

    async def _wait_ready(self, entry: LoadedRunner) -> None:
        try:
            await asyncio.shield(entry.ready)
        except BaseException:
            self._detach(entry)
            raise

    def _attach(self, entry: LoadedRunner, keep_alive: float | None, pin: bool = False) -> None:
        entry.refcount += 1
        entry.cancel_timer()
        entry.last_used = time.monotonic()
        if pin:
            entry.pinned, entry.keep_alive = True, FOREVER
        elif keep_alive is not None and not entry.pinned:
            entry.keep_alive = keep_alive if keep_alive <= MAX_DURATION_S else FOREVER  # Go's max

    def _detach(self, entry: LoadedRunner) -> None:
        entry.refcount -= 1
        entry.last_used = time.monotonic()
        if entry.refcount == 0:
            self._changed.set()
            self._on_idle(entry)

    def _on_idle(self, entry: LoadedRunner) -> None:
        """Nobody uses ``entry`` any more: start its keep-alive, stop it, or abort its load."""
        if entry.state is RunnerState.READY:
            if entry.retired:
                self._background(self._stop(entry, "replaced"))
            else:
                entry.schedule_expiry(self._expire)
        elif (entry.state is RunnerState.LOADING and not entry.pinned
              and not self._wanted.get(entry.key)):
            log.info("load_aborted", model=entry.spec.model_name, runner_pid=entry.pid,
                     reason="no request is waiting for it")
            self._drop(entry)
            entry.state = RunnerState.STOPPING
            if entry.load_task is not None:
                entry.load_task.cancel()

    # -- keep-alive -----------------------------------------------------------------------------

    def _expire(self, entry: LoadedRunner) -> None:
        if entry.refcount == 0 and entry.state is RunnerState.READY:
            self._background(self._stop(entry, "expired"))

    # -- loading --------------------------------------------------------------------------------

    async def _wait_backoff(self, key: RunnerKey) -> None:
        history = self._crashes.get(key)
        delay = history.delay(*self.backoff) if history else 0.0
        if delay > 0:
            log.info("runner_restart_backoff", digest=key[0][:12], failures=history.failures,
                     delay_s=round(delay, 2))
            await asyncio.sleep(delay)

    async def _start(self, key: RunnerKey, resolved: Any, num_ctx: int) -> LoadedRunner:
        spec = self._specs.make(resolved, num_ctx, embedding=key[1])
        footprint = await self.memory.footprint(spec.model_path, spec.ctx_size * spec.parallel,
                                                (spec.projector,) if spec.projector else ())
        await self._make_room(footprint, spec.model_name)
        if (old := self._runners.get(key)) is not None:
            self._retire(old)
        entry = LoadedRunner(key=key, model=resolved.model, spec=spec, footprint=footprint,
                             keep_alive=self.settings.keep_alive, context_length=num_ctx)
        self._runners[key] = entry
        self._alive.add(entry)
        entry.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.observer.starting(entry)
        entry.load_task = self._background(self._load(entry))
        return entry

    def _retire(self, old: LoadedRunner) -> None:
        """A runner with a larger context replaces ``old``, which stops once idle."""
        log.info("runner_replaced", model=old.spec.model_name, runner_pid=old.pid,
                 old_num_ctx=old.spec.ctx_size)
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
        with contextlib.suppress(CorralError):
            info = await entry.process.client.info()
            entry.context_length = info.n_ctx_per_slot or entry.context_length

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
                        stderr_tail=list(getattr(entry.process, "stderr_tail", ())))
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
