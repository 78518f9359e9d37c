"""The Scheduler: admits requests to runners (Ollama ``server/sched.go``), and wires the policy
and the supervisor together.

Where things live (each module says why it decides what it decides):

* ``gateway/scheduler.py`` (here) — **admission**: which runner serves a request, slots, the queue.
* ``gateway/keep_alive.py`` — **keep_alive**: timers, pins, unload, loads nobody waits for.
* ``gateway/eviction.py`` — **eviction**: ``OLLAMA_MAX_LOADED_MODELS`` and the memory estimate.
* ``gateway/supervisor.py`` — **processes**: spawn, stall timeout, watch, restart backoff, stop;
  where a runner crash becomes the error a request sees.
* ``gateway/queueing.py`` — the bounded wait queue (``OLLAMA_MAX_QUEUE``) and its wait times.

Admission:

* **One runner per (manifest digest, embedding mode)** (embeddings get their own ``--embedding``
  runner). A request whose ``num_ctx`` fits the loaded context and whose explicit load options
  (``gateway/load_options.py``) match it shares the runner; otherwise it retires it (it stops
  once idle) and loads a new one.
* **Slots.** A runner serves ``OLLAMA_NUM_PARALLEL`` requests at once (decoded together in one
  batch); more wait for a slot here, first come first served.
* **Queue.** Requests waiting for a slot, a load or a restart backoff count against
  ``OLLAMA_MAX_QUEUE``; the one whose own load runs is in service. A request that leaves while
  waiting is forgotten. Loads run one at a time, as Ollama's do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from gateway.clock import SystemClock
from gateway.eviction import Eviction
from gateway.keep_alive import KeepAlive
from gateway.load_options import AUTO, LoadOptions
from gateway.leases import FOREVER_DELTA, Lease, LoadedRunner, RunnerGone, RunnerKey, RunnerState
from gateway.memory import SystemMemory
from gateway.model_ref import ModelRef
from gateway.observer import SchedulerObserver
from gateway.ports import Clock, MemoryProbe, RunnerProcessPort, SpawnFn
from gateway.queueing import QUEUE_FULL, WaitQueue
from gateway.runners import RunnerSpec, spawn_runner
from gateway.supervisor import RunnerSupervisor
from services.errors import RunnerUnavailableError
from services.settings import FOREVER, GatewaySettings

__all__ = ["FOREVER_DELTA", "QUEUE_FULL", "Lease", "LoadedRunner", "RunnerState", "Scheduler"]


class Scheduler:
    """Admits requests to runners; keep-alive, eviction and the processes are delegated."""

    def __init__(self, settings: GatewaySettings, spawn: SpawnFn | None = None,
                 memory: MemoryProbe | None = None, observer: SchedulerObserver | None = None,
                 clock: Clock | None = None) -> None:
        """``spawn`` starts a runner process (default: ``python -m runner``, its stall timer on
        ``clock``); ``clock`` drives keep-alive timers, restart backoff and queue waits."""
        self.settings = settings
        self.clock = clock or SystemClock()
        async def spawn_on_this_clock(spec: RunnerSpec) -> RunnerProcessPort:
            return await spawn_runner(spec, clock=self.clock)

        start: SpawnFn = spawn or spawn_on_this_clock
        self.supervisor = RunnerSupervisor(settings, start, memory or SystemMemory(),
                                           observer or SchedulerObserver(), self.clock,
                                           self._on_idle)
        self.keep_alive = KeepAlive(self.supervisor, self.clock)
        self.eviction = Eviction(self.supervisor, settings.max_loaded_models)
        self.queue = WaitQueue(settings.max_queue, self.clock)
        self._closing = False
        self._load_lock = asyncio.Lock()

    @property
    def observer(self) -> SchedulerObserver:
        """The hooks metrics listen on (``gateway/metrics.py`` installs its own)."""
        return self.supervisor.observer

    @observer.setter
    def observer(self, observer: SchedulerObserver) -> None:
        self.supervisor.observer = observer

    # -- requests -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, model: ModelRef, num_ctx: int, keep_alive: float | None, *,
                      embedding: bool = False, load: LoadOptions = AUTO) -> AsyncIterator[Lease]:
        """Hold a slot of a ready runner for ``model`` for the block.

        ``embedding`` asks for a runner started with ``--embedding`` (a separate process);
        ``load`` holds the request's explicit load options. Raises ``ServerBusyError`` at once
        when the request would have to wait and ``OLLAMA_MAX_QUEUE`` requests already do.
        """
        started = self.clock.monotonic()
        with self.observer.request(model.name) as tracker:
            entry = await self._claim(model, num_ctx, keep_alive, embedding=embedding,
                                      slot=True, load=load)
            waited_ns = round((self.clock.monotonic() - started) * 1e9)
            tracker.started(waited_ns)
            try:
                yield Lease(entry, waited_ns, tracker)
            finally:
                entry.free_slot()
                self.keep_alive.detach(entry)

    async def load(self, model: ModelRef, num_ctx: int, keep_alive: float | None, *,
                   embedding: bool = False, load: LoadOptions = AUTO) -> None:
        """Load the model (or keep it loaded) without taking a slot: ``done_reason: load``."""
        self.keep_alive.detach(await self._claim(model, num_ctx, keep_alive,
                                                 embedding=embedding, slot=False, load=load))

    async def preload(self, model: ModelRef, num_ctx: int, load: LoadOptions = AUTO) -> None:
        """Load and pin (``CORRAL_PRELOAD``): keep_alive forever, not aborted without waiters."""
        self.keep_alive.detach(await self._claim(model, num_ctx, FOREVER, embedding=False,
                                                 slot=False, pin=True, load=load))

    async def unload(self, digest: str) -> None:
        """Unload every runner of this model as soon as it is idle (``keep_alive: 0``)."""
        self.keep_alive.unload(digest)

    def loaded(self) -> list[LoadedRunner]:
        """Runners that are loading or loaded (what /api/ps shows)."""
        return self.supervisor.resident()

    @property
    def pending(self) -> int:
        """Requests waiting for a slot, a load (not their own) or a restart backoff."""
        return self.queue.waiting

    def run_in_background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the scheduler cancels on shutdown."""
        return self.supervisor.background(coro)

    async def shutdown(self) -> None:
        """Stop every runner (SIGTERM, then SIGKILL after the grace period)."""
        self._closing = True
        await self.supervisor.shutdown()

    # -- claiming a runner and a slot -----------------------------------------------------------

    async def _claim(self, model: ModelRef, num_ctx: int, keep_alive: float | None, *,
                     embedding: bool, slot: bool, pin: bool = False,
                     load: LoadOptions = AUTO) -> LoadedRunner:
        """An attached, ready runner (holding a slot when ``slot``)."""
        key = (model.digest, embedding)
        entry = self._usable(key, num_ctx, load)
        if entry and entry.state is RunnerState.READY and (not slot or entry.has_free_slot()):
            self.keep_alive.attach(entry, keep_alive, pin)  # fast path: never queued
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
                    self.keep_alive.detach(entry)
                except BaseException:
                    self.keep_alive.detach(entry)
                    raise
        finally:
            ticket.close()

    def _check_open(self) -> None:
        if self._closing:
            raise RunnerUnavailableError("server is shutting down")

    def _usable(self, key: RunnerKey, num_ctx: int, load: LoadOptions) -> LoadedRunner | None:
        """The current runner of ``key`` if its context per slot is at least ``num_ctx`` and it
        was started with every load option the request set."""
        entry = self.supervisor.runners.get(key)
        if (entry is None or not entry.resident or entry.spec.ctx_size < num_ctx
                or not load.served_by(entry.spec)):
            return None
        return entry

    async def _ready_entry(self, key: RunnerKey, model: ModelRef, num_ctx: int,
                           load: LoadOptions, keep_alive: float | None, pin: bool,
                           in_service: Callable[[], None]) -> LoadedRunner:
        """Attach to the runner of ``key``, loading one first when there is none that fits
        (``in_service()`` is called then: a request whose load runs no longer waits)."""
        entry = self._usable(key, num_ctx, load)
        if entry is None:
            self.keep_alive.want(key)  # keeps a load of this key alive while we queue for the lock
            wanted = True
            try:
                await self.supervisor.wait_backoff(key)
                async with self._load_lock:  # one load at a time, as Ollama does
                    self._check_open()
                    entry = self._usable(key, num_ctx, load)
                    if entry is None:
                        in_service()
                        entry = await self._start(key, model, num_ctx, load)
                    self.keep_alive.attach(entry, keep_alive, pin)
                    self.keep_alive.unwant(key)
                    wanted = False
                    await self._wait_ready(entry)
                    return entry
            finally:
                if wanted:
                    self.keep_alive.unwant(key)
        self.keep_alive.attach(entry, keep_alive, pin)
        await self._wait_ready(entry)
        return entry

    async def _start(self, key: RunnerKey, model: ModelRef, num_ctx: int,
                     load: LoadOptions) -> LoadedRunner:
        """Make room for a new runner of ``key`` (replacing the current one) and start it."""
        spec, footprint = await self.supervisor.plan(model, num_ctx, key, load)
        await self.eviction.make_room(footprint, spec.model_name)
        if (old := self.supervisor.runners.get(key)) is not None:
            self.keep_alive.retire(old, load)
        return self.supervisor.start(key, model, spec, footprint, num_ctx)

    async def _wait_ready(self, entry: LoadedRunner) -> None:
        try:
            await asyncio.shield(entry.ready)
        except BaseException:
            self.keep_alive.detach(entry)
            raise

    def _on_idle(self, entry: LoadedRunner) -> None:
        """The supervisor's hook: a runner finished loading (or was replaced) with no users."""
        self.keep_alive.on_idle(entry)
