"""The scheduler's records: one ``LoadedRunner`` per runner process, a request's ``Lease`` on it,
and the crash history that spaces out restarts of a model that keeps crashing."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from gateway.memory import Footprint
from gateway.observer import RequestTracker
from gateway.ports import Cancellable, RunnerPort, RunnerProcessPort
from gateway.runners import RunnerSpec
from services.errors import (CorralError, RequestCancelledError, RunnerCrashedError,
                             RunnerUnavailableError)
from services.pb.corral.registry.v1 import registry_pb2 as rpb
from services.pb.corral.runner.v1 import runner_pb2 as pb

FOREVER_DELTA = dt.timedelta(days=292 * 365)  # Go's max Duration, as /api/ps shows "forever"
CRASH_NOTICE_S = 1.0  # how long a broken stream waits for the process exit to be noticed
BACKOFF_BASE_S = 1.0  # the second crash in a row waits this long before the next start...
BACKOFF_MAX_S = 30.0  # ...doubling per crash up to this
BACKOFF_RESET_S = 60.0  # a runner that ran this long before crashing starts the count afresh

RunnerKey = tuple[str, bool]  # (manifest digest, embedding mode)


class RunnerState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


class RunnerGone(Exception):  # noqa: N818 - a signal to start over, not an error
    """Raised to requests waiting for a slot on a runner that exited (they start over)."""


@dataclass(eq=False)
class LoadedRunner:
    """The scheduler's record of one runner process.

    ``refcount`` counts every attached request (waiting for the load, waiting for a slot, or
    holding one); ``active`` counts those holding one of the ``spec.parallel`` slots.
    """

    key: RunnerKey
    model: rpb.ModelSummary  # what /api/ps shows (ModelRef.summary)
    spec: RunnerSpec
    keep_alive: float
    footprint: Footprint = field(default_factory=lambda: Footprint(0, 0, 0))
    pinned: bool = False  # CORRAL_PRELOAD: keep_alive forever, requests cannot shorten it
    retired: bool = False  # replaced by a runner with a larger context: stop once idle
    state: RunnerState = RunnerState.LOADING
    process: RunnerProcessPort | None = None  # None until spawned
    refcount: int = 0
    active: int = 0
    slot_waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    last_used: float = 0.0  # the scheduler's clock (LRU eviction)
    ready_at: float | None = None
    expires_at: dt.datetime | None = None
    context_length: int = 0
    timer: Cancellable | None = None  # the keep-alive timer (gateway/keep_alive.py)
    load_task: asyncio.Task[None] | None = None
    spawning: asyncio.Future[RunnerProcessPort] | None = None
    stop_task: asyncio.Task[None] | None = None
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def queued(self) -> int:
        """Attached requests without a slot yet (waiting for the load or for a slot)."""
        return self.refcount - self.active

    @property
    def resident(self) -> bool:
        """Loading or loaded: counts against the model limit and memory."""
        return self.state in (RunnerState.LOADING, RunnerState.READY)

    def has_free_slot(self) -> bool:
        return self.active < self.spec.parallel and not self.slot_waiters

    async def take_slot(self) -> None:
        """Wait (first come, first served) for one of the ``spec.parallel`` slots."""
        if self.state is not RunnerState.READY:
            raise RunnerGone()
        if self.has_free_slot():
            self.active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.slot_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over as we left: pass it on
                self.free_slot()
            else:
                with contextlib.suppress(ValueError):
                    self.slot_waiters.remove(waiter)
            raise

    def free_slot(self) -> None:
        """Hand the slot to the first waiter, or give it back."""
        while self.slot_waiters:
            waiter = self.slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def fail_waiters(self) -> None:
        """Every request waiting for a slot starts over (on a fresh runner)."""
        while self.slot_waiters:
            waiter = self.slot_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RunnerGone())


class Lease:
    """A request's hold on a ready runner; released when the ``acquire`` block exits."""

    def __init__(self, entry: LoadedRunner, load_duration_ns: int,
                 tracker: RequestTracker | None = None) -> None:
        assert entry.process is not None, "a lease is only taken on a ready runner"
        self.entry = entry
        self.process = entry.process
        self.client: RunnerPort = entry.process.client
        self.load_duration_ns = load_duration_ns
        self.tracker = tracker or RequestTracker()

    async def generate(self, request: pb.GenerateRequest
                       ) -> AsyncGenerator[pb.GenerationEvent, None]:
        """The runner's Generate stream; a broken stream from a dead runner is RunnerCrashedError."""
        stream = self.client.generate(request)
        first = True
        try:
            async for item in stream:
                if item.HasField("done"):
                    self.tracker.generated(item.done)
                elif first:
                    first = False
                    self.tracker.first_token()
                yield item
        except CorralError as exc:
            raise await self._explain(exc) from exc
        finally:
            await stream.aclose()

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        """The runner's Embed reply (its prompt tokens are counted)."""
        reply = await self.client.embed(request)
        self.tracker.embedded(reply.prompt_eval_count)
        return reply

    async def _explain(self, exc: CorralError) -> CorralError:
        if not (isinstance(exc, (RunnerUnavailableError, RequestCancelledError))
                or type(exc) is CorralError):
            return exc
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.entry.exited.wait(), CRASH_NOTICE_S)
        if self.entry.exited.is_set() and self.entry.state is RunnerState.EXITED:
            return RunnerCrashedError(self.process.exit_cause())
        return exc


@dataclass
class CrashHistory:
    """Consecutive failures (crashes, failed loads) of one runner key."""

    failures: int = 0
    last_at: float = 0.0

    def record(self, uptime: float | None, now: float) -> None:
        """One more failure at ``now`` (monotonic seconds); ``uptime`` is how long the runner
        had been ready, if it was."""
        if uptime is not None and uptime >= BACKOFF_RESET_S:
            self.failures = 0
        self.failures += 1
        self.last_at = now

    def delay(self, now: float, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
        """Seconds still to wait at ``now`` before the next start: none after a single failure."""
        if self.failures < 2:
            return 0.0
        wait = min(base * 2.0 ** (self.failures - 2), cap)
        return max(0.0, self.last_at + wait - now)
