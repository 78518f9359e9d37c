"""The Scheduler: owns every runner's lifecycle (Ollama ``server/sched.go``).

One runner per (manifest digest, num_ctx). Requests attach to a loaded runner at once (refcount);
loads are serialized and count against ``OLLAMA_MAX_QUEUE``. A runner whose refcount drops to 0
starts its keep-alive timer; ``keep_alive`` is sticky (the last request that set it wins).
When ``OLLAMA_MAX_LOADED_MODELS`` is reached, the least recently used idle runner is evicted
(Ollama picks the shortest keep-alive instead; LRU keeps the model you are using warm).
A runner that exits on its own is dropped at once; the next request starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import enum
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gateway.runners import RunnerSpec, describe_returncode, spawn_runner
from services.errors import (CorralError, RequestCancelledError, RunnerCrashedError,
                             RunnerUnavailableError, ServerBusyError)
from services.settings import GatewaySettings

log = structlog.get_logger()

QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
FOREVER_DELTA = dt.timedelta(days=292 * 365)  # Go's max Duration, as /api/ps shows "forever"
CRASH_NOTICE_S = 1.0  # how long a broken stream waits for the process exit to be noticed

SpawnFn = Callable[[RunnerSpec], Awaitable[Any]]


class RunnerState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


@dataclass(eq=False)
class LoadedRunner:
    """The scheduler's record of one runner process."""

    key: tuple[str, int]
    model: Any  # registry ModelSummary
    spec: RunnerSpec
    keep_alive: float
    state: RunnerState = RunnerState.LOADING
    process: Any = None
    refcount: int = 0
    last_used: float = field(default_factory=time.monotonic)
    expires_at: dt.datetime | None = None
    context_length: int = 0
    timer: asyncio.TimerHandle | None = None
    ready: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        return getattr(self.process, "pid", None)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Lease:
    """A request's hold on a ready runner; released when the ``acquire`` block exits."""

    def __init__(self, entry: LoadedRunner, load_duration_ns: int) -> None:
        self.entry = entry
        self.client = entry.process.client
        self.load_duration_ns = load_duration_ns

    async def generate(self, request) -> AsyncIterator[Any]:
        """The runner's Generate stream; a broken stream from a dead runner is RunnerCrashedError."""
        stream = self.client.generate(request)
        try:
            async for item in stream:
                yield item
        except CorralError as exc:
            raise await self._explain(exc) from exc
        finally:
            await stream.aclose()

    async def _explain(self, exc: CorralError) -> CorralError:
        if not (isinstance(exc, (RunnerUnavailableError, RequestCancelledError))
                or type(exc) is CorralError):
            return exc
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.entry.exited.wait(), CRASH_NOTICE_S)
        if self.entry.exited.is_set() and self.entry.state is RunnerState.EXITED:
            return RunnerCrashedError(self.entry.process.exit_cause())
        return exc


class Scheduler:
    """Starts, shares, expires, evicts and stops runner processes."""

    def __init__(self, settings: GatewaySettings, spawn: SpawnFn = spawn_runner) -> None:
        self.settings = settings
        self._spawn = spawn
        self._runners: dict[tuple[str, int], LoadedRunner] = {}
        self._alive: set[LoadedRunner] = set()  # every entry whose process may still run
        self._tasks: set[asyncio.Task] = set()
        self._pending = 0
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._socket_dir: Path | None = None
        self._own_socket_dir = False

    # -- requests -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def acquire(self, resolved: Any, num_ctx: int,
                      keep_alive: float | None) -> AsyncIterator[Lease]:
        """Hold a ready runner for ``resolved`` (a ResolveModelResponse) for the block's duration."""
        started = time.monotonic_ns()
        entry = await self._claim(resolved, num_ctx, keep_alive)
        try:
            await asyncio.shield(entry.ready)
            yield Lease(entry, time.monotonic_ns() - started)
        finally:
            self._detach(entry)

    async def unload(self, digest: str) -> None:
        """Unload every runner of this model as soon as it is idle (``keep_alive: 0``)."""
        for entry in [e for e in self._runners.values() if e.key[0] == digest]:
            entry.keep_alive = 0
            if entry.refcount == 0 and entry.state is RunnerState.READY:
                self._schedule_expiry(entry)

    def loaded(self) -> list[LoadedRunner]:
        """Runners that are loading or loaded (what /api/ps shows)."""
        return list(self._runners.values())

    @property
    def pending(self) -> int:
        return self._pending

    async def shutdown(self) -> None:
        """Stop every runner (SIGTERM, then SIGKILL after the grace period)."""
        for entry in list(self._alive):
            entry.cancel_timer()
            self._runners.pop(entry.key, None)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(self._stop(e, "shutdown") for e in list(self._alive)),
                             return_exceptions=True)
        if self._own_socket_dir and self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    # -- attaching ------------------------------------------------------------------------------

    async def _claim(self, resolved: Any, num_ctx: int, keep_alive: float | None) -> LoadedRunner:
        key = (resolved.model.digest, num_ctx)
        if entry := self._live(key):  # fast path: loaded or loading, never queued
            self._attach(entry, keep_alive)
            return entry
        if self._pending >= self.settings.max_queue:
            raise ServerBusyError(QUEUE_FULL)
        self._pending += 1
        try:
            async with self._load_lock:  # one load at a time, as Ollama does
                entry = self._live(key) or await self._start(key, resolved, num_ctx)
                self._attach(entry, keep_alive)
                try:
                    await asyncio.wait([entry.ready])
                except BaseException:
                    self._detach(entry)
                    raise
                return entry
        finally:
            self._pending -= 1

    def _live(self, key: tuple[str, int]) -> LoadedRunner | None:
        entry = self._runners.get(key)
        return entry if entry and entry.state in (RunnerState.LOADING, RunnerState.READY) else None

    def _attach(self, entry: LoadedRunner, keep_alive: float | None) -> None:
        entry.refcount += 1
        entry.cancel_timer()
        entry.last_used = time.monotonic()
        if keep_alive is not None:
            entry.keep_alive = keep_alive

    def _detach(self, entry: LoadedRunner) -> None:
        entry.refcount -= 1
        entry.last_used = time.monotonic()
        if entry.refcount == 0:
            self._changed.set()
            if entry.state is RunnerState.READY:
                self._schedule_expiry(entry)

    # -- keep-alive -----------------------------------------------------------------------------

    def _schedule_expiry(self, entry: LoadedRunner) -> None:
        entry.cancel_timer()
        now = dt.datetime.now(dt.timezone.utc)
        if entry.keep_alive == float("inf"):
            entry.expires_at = now + FOREVER_DELTA
        elif entry.keep_alive <= 0:
            entry.expires_at = now
            self._expire(entry)
        else:
            entry.expires_at = now + dt.timedelta(seconds=entry.keep_alive)
            entry.timer = asyncio.get_running_loop().call_later(
                entry.keep_alive, self._expire, entry, context=contextvars.Context())

    def _expire(self, entry: LoadedRunner) -> None:
        if entry.refcount == 0 and entry.state is RunnerState.READY:
            self._background(self._stop(entry, "expired"))

    # -- loading and stopping -------------------------------------------------------------------

    async def _start(self, key: tuple[str, int], resolved: Any, num_ctx: int) -> LoadedRunner:
        await self._make_room()
        entry = LoadedRunner(key=key, model=resolved.model, keep_alive=self.settings.keep_alive,
                             spec=self._spec(resolved, num_ctx), context_length=num_ctx)
        self._runners[key] = entry
        self._alive.add(entry)
        entry.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._background(self._load(entry))
        return entry

    def _spec(self, resolved: Any, num_ctx: int) -> RunnerSpec:
        parallel = self.settings.num_parallel
        name = resolved.model.name
        socket = self._sockets() / f"runner-{next(self._ids)}-{resolved.model.digest[:12]}.sock"
        threads = self.settings.num_threads or len(os.sched_getaffinity(0))
        # --ctx-size is per slot: the runner allocates num_ctx × parallel, as Ollama HEAD does.
        return RunnerSpec(model_name=name, model_path=resolved.model_path, socket_path=socket,
                          ctx_size=num_ctx, parallel=parallel, threads=threads,
                          debug=self.settings.debug)

    def _sockets(self) -> Path:
        if self._socket_dir is None:
            if self.settings.runtime_dir is not None:
                self._socket_dir = self.settings.runtime_dir
                self._socket_dir.mkdir(parents=True, exist_ok=True)
            else:
                self._socket_dir = Path(tempfile.mkdtemp(prefix="corral-"))
                self._own_socket_dir = True
        return self._socket_dir

    async def _load(self, entry: LoadedRunner) -> None:
        started = time.monotonic()
        try:
            entry.process = await self._spawn(entry.spec)
            self._background(self._watch(entry))
            await entry.process.wait_ready(self.settings.load_timeout)
            await self._read_info(entry)
        except BaseException as exc:
            await self._load_failed(entry, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        entry.state = RunnerState.READY
        log.info("runner_ready", runner_pid=entry.pid, model=entry.spec.model_name,
                 load_duration_ms=round((time.monotonic() - started) * 1000, 1))
        entry.ready.set_result(None)
        if entry.refcount == 0:
            self._schedule_expiry(entry)

    async def _read_info(self, entry: LoadedRunner) -> None:
        with contextlib.suppress(CorralError):
            info = await entry.process.client.info()
            entry.context_length = info.n_ctx_per_slot or entry.context_length

    async def _load_failed(self, entry: LoadedRunner, exc: BaseException) -> None:
        error = exc if isinstance(exc, CorralError) else RunnerUnavailableError(
            "server is shutting down" if isinstance(exc, asyncio.CancelledError)
            else f"failed to start llama runner: {exc}")
        log.warning("runner_load_failed", model=entry.spec.model_name, runner_pid=entry.pid,
                    error=error.message)
        if self._runners.get(entry.key) is entry:
            del self._runners[entry.key]
        entry.ready.set_exception(error)
        await self._stop(entry, "load_failed")
        self._alive.discard(entry)
        self._changed.set()

    async def _watch(self, entry: LoadedRunner) -> None:
        """Supervise the process: an exit nobody asked for drops the runner at once."""
        returncode = await entry.process.wait()
        if entry.state is not RunnerState.STOPPING:
            entry.state = RunnerState.EXITED
            entry.cancel_timer()
            if self._runners.get(entry.key) is entry:
                del self._runners[entry.key]
            self._alive.discard(entry)
            log.warning("runner_exited", runner_pid=entry.pid, model=entry.spec.model_name,
                        returncode=returncode, cause=describe_returncode(returncode),
                        stderr_tail=list(getattr(entry.process, "stderr_tail", ())))
            self._changed.set()
            await entry.process.stop()  # reaps it and closes the gRPC channel
        entry.exited.set()

    async def _make_room(self) -> None:
        """Evict least recently used idle runners until one more fits; wait if all are busy."""
        while len(self._runners) >= self.settings.max_loaded_models:
            idle = [e for e in self._runners.values()
                    if e.refcount == 0 and e.state is RunnerState.READY]
            if idle:
                await self._stop(min(idle, key=lambda e: e.last_used), "evicted")
                continue
            self._changed.clear()
            await self._changed.wait()

    async def _stop(self, entry: LoadedRunner, reason: str) -> None:
        if entry.state is RunnerState.STOPPING and reason != "shutdown":
            return
        entry.state = RunnerState.STOPPING
        entry.cancel_timer()
        if self._runners.get(entry.key) is entry:
            del self._runners[entry.key]
        if entry.process is not None:
            returncode = await entry.process.stop()
            log.info("runner_stopped", runner_pid=entry.pid, model=entry.spec.model_name,
                     reason=reason, returncode=returncode)
        with contextlib.suppress(OSError):
            entry.spec.socket_path.unlink(missing_ok=True)
        self._alive.discard(entry)
        if reason in ("expired", "evicted"):
            log.info("model_unloaded", model=entry.spec.model_name, reason=reason)
        self._changed.set()

    def _background(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` as a task with an empty log context (it outlives the request)."""
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
