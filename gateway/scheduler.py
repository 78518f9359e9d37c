"""The Scheduler: owns every runner's lifecycle (Ollama ``server/sched.go``).

* **One runner per (manifest digest, embedding mode)** (embeddings get their own ``--embedding``
  runner). A request whose ``num_ctx`` fits the loaded context and whose explicit load options
  (``gateway/load_options.py``) match it shares the runner; otherwise it retires it (it stops
  once idle) and loads a new one.
* **Slots.** A runner serves ``OLLAMA_NUM_PARALLEL`` requests at once (decoded together in one
  batch); more wait for a slot here, first come first served.
* **Queue** (``gateway/queueing.py``). Requests waiting for a slot, a load or a restart backoff
  count against ``OLLAMA_MAX_QUEUE``; the one whose own load runs is in service. A request that
  leaves while waiting is forgotten, and a load nobody waits for any more is aborted (unless it
  is a preload). Loads run one at a time, as Ollama's do.
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from gateway.lifecycle import RunnerLifecycle
from gateway.load_options import AUTO, LoadOptions
from gateway.loaded import (BACKOFF_BASE_S, BACKOFF_MAX_S, FOREVER_DELTA, CrashHistory, Lease,
                            LoadedRunner, RunnerGone, RunnerKey, RunnerState)
from gateway.memory import SystemMemory
from gateway.model_ref import ModelRef
from gateway.observer import SchedulerObserver
from gateway.ports import MemoryProbe, SpawnFn
from gateway.queueing import QUEUE_FULL, WaitQueue
from gateway.runners import SpecMaker, spawn_runner
from services.errors import RunnerUnavailableError
from services.settings import FOREVER, MAX_DURATION_S, GatewaySettings

__all__ = ["FOREVER_DELTA", "QUEUE_FULL", "Lease", "LoadedRunner", "RunnerState", "Scheduler"]

log = structlog.get_logger()

class Scheduler(RunnerLifecycle):
    """Starts, shares, expires, evicts, supervises and stops runner processes (the process
    half lives in ``gateway.lifecycle``)."""

    def __init__(self, settings: GatewaySettings, spawn: SpawnFn = spawn_runner,
                 memory: MemoryProbe | None = None, observer: SchedulerObserver | None = None) -> None:
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
        self.queue = WaitQueue(settings.max_queue)
        self._closing = False
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._specs = SpecMaker(settings)

    # -- requests -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, model: ModelRef, num_ctx: int, keep_alive: float | None, *,
                      embedding: bool = False, load: LoadOptions = AUTO) -> AsyncIterator[Lease]:
        """Hold a slot of a ready runner for ``model`` for the block.

        ``embedding`` asks for a runner started with ``--embedding`` (a separate process);
        ``load`` holds the request's explicit load options. Raises ``ServerBusyError`` at once
        when the request would have to wait and ``OLLAMA_MAX_QUEUE`` requests already do.
        """
        started = time.monotonic_ns()
        with self.observer.request(model.name) as tracker:
            entry = await self._claim(model, num_ctx, keep_alive, embedding=embedding,
                                      slot=True, load=load)
            waited_ns = time.monotonic_ns() - started
            tracker.started(waited_ns)
            try:
                yield Lease(entry, waited_ns, tracker)
            finally:
                entry.free_slot()
                self._detach(entry)

    async def load(self, model: ModelRef, num_ctx: int, keep_alive: float | None, *,
                   embedding: bool = False, load: LoadOptions = AUTO) -> None:
        """Load the model (or keep it loaded) without taking a slot: ``done_reason: load``."""
        self._detach(await self._claim(model, num_ctx, keep_alive, embedding=embedding,
                                       slot=False, load=load))

    async def preload(self, model: ModelRef, num_ctx: int, load: LoadOptions = AUTO) -> None:
        """Load and pin (``CORRAL_PRELOAD``): keep_alive forever, not aborted without waiters."""
        self._detach(await self._claim(model, num_ctx, FOREVER, embedding=False, slot=False,
                                       pin=True, load=load))

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
        """Requests waiting for a slot, a load (not their own) or a restart backoff."""
        return self.queue.waiting

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

    async def _claim(self, model: ModelRef, num_ctx: int, keep_alive: float | None, *,
                     embedding: bool, slot: bool, pin: bool = False,
                     load: LoadOptions = AUTO) -> LoadedRunner:
        """An attached, ready runner (holding a slot when ``slot``)."""
        key = (model.digest, embedding)
        entry = self._usable(key, num_ctx, load)
        if entry and entry.state is RunnerState.READY and (not slot or entry.has_free_slot()):
            self._attach(entry, keep_alive, pin)  # fast path: never queued
            entry.active += slot
            self.queue.served_at_once()
            return entry
        ticket = self.queue.enter()  # ServerBusyError when OLLAMA_MAX_QUEUE requests wait
        try:
            while True:
                self._check_open()
                entry = await self._ready_entry(key, model, num_ctx, load, keep_alive, pin,
                                                ticket.serve)
                try:
                    if slot:
                        await entry.take_slot()
                    ticket.serve()
                    return entry
                except RunnerGone:  # it exited before our turn: start over on a fresh one
                    self._detach(entry)
                except BaseException:
                    self._detach(entry)
                    raise
        finally:
            ticket.close()

    def _check_open(self) -> None:
        if self._closing:
            raise RunnerUnavailableError("server is shutting down")

    def _usable(self, key: RunnerKey, num_ctx: int, load: LoadOptions) -> LoadedRunner | None:
        """The current runner of ``key`` if its context per slot is at least ``num_ctx`` and it
        was started with every load option the request set."""
        entry = self._runners.get(key)
        if (entry is None or not entry.resident or entry.spec.ctx_size < num_ctx
                or not load.served_by(entry.spec)):
            return None
        return entry

    async def _ready_entry(self, key: RunnerKey, model: ModelRef, num_ctx: int, load: LoadOptions,
                           keep_alive: float | None, pin: bool,
                           in_service: Callable[[], None]) -> LoadedRunner:
        """Attach to the runner of ``key``, loading one first when there is none that fits
        (``in_service()`` is called then: a request whose load runs no longer waits)."""
        entry = self._usable(key, num_ctx, load)
        if entry is None:
            self._wanted[key] += 1  # keeps a load of this key alive while we queue for the lock
            wanted = True
            try:
                await self._wait_backoff(key)
                async with self._load_lock:  # one load at a time, as Ollama does
                    self._check_open()
                    entry = self._usable(key, num_ctx, load)
                    if entry is None:
                        in_service()
                        entry = await self._start(key, model, num_ctx, load)
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
