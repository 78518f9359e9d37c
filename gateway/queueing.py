"""The bounded wait queue in front of the runners (``OLLAMA_MAX_QUEUE``), and its wait times.

A request is *waiting* while it waits for a slot, for a model another request is loading, for
the load lock or for a restart backoff. At most ``OLLAMA_MAX_QUEUE`` wait; the next one is refused
at once with 503 (Ollama's ``ErrMaxQueue``). A request whose own model load is running is *in
service*, not waiting: Ollama's scheduler takes it off its pending channel before it loads, so 12
simultaneous requests for an unloaded model with ``OLLAMA_MAX_QUEUE=2`` give 3 answers — the one
that loads and the two that wait — and 9 refusals. Unlike Ollama, a wait for a slot counts too
(Ollama hides those in an unbounded semaphore), so a thousand clients on a loaded model get
``num_parallel + OLLAMA_MAX_QUEUE`` answers at a time and quick 503s for the rest, never a silent
pile-up.

Wait times of served requests (zero for those served at once) are kept over a sliding window:
``/api/ps`` reports their p50/p99/max under ``queue``, and each burst in which someone really
waited (or was refused) logs ``queue_drained`` with the same figures when the queue empties.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import structlog

from gateway.clock import SystemClock
from gateway.ports import Clock
from services.errors import ServerBusyError

log = structlog.get_logger()

QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
WINDOW = 4096  # wait times kept for the percentiles
LOGGED_WAIT_NS = 1_000_000  # a burst whose longest wait is shorter (a lone load) is not logged


class WaitQueue:
    """Counts waiting requests against ``limit`` and remembers how long served ones waited."""

    def __init__(self, limit: int, clock: Clock | None = None) -> None:
        self.limit = limit
        self.clock = clock or SystemClock()
        self.waiting = 0
        self.refused = 0  # since start
        self._waits_ns: deque[int] = deque(maxlen=WINDOW)
        self._burst = _Burst()

    def enter(self) -> Ticket:
        """A ticket for a request that has to wait; ``ServerBusyError`` when the queue is full."""
        if self.waiting >= self.limit:
            self.refused += 1
            self._burst.refused += 1
            raise ServerBusyError(QUEUE_FULL)
        self.waiting += 1
        return Ticket(self)

    def served_at_once(self) -> None:
        """A request that never waited (fast path)."""
        self._waits_ns.append(0)

    def stats(self) -> dict[str, float]:
        """What ``/api/ps`` shows: the queue now and the wait times of recent served requests."""
        return {"waiting": self.waiting, "limit": self.limit, "refused": self.refused,
                **_percentiles(self._waits_ns)}

    def _leave(self, waited_ns: int | None) -> None:
        self.waiting -= 1
        if waited_ns is not None:
            self._waits_ns.append(waited_ns)
            self._burst.waits_ns.append(waited_ns)
            self._burst.served += 1
        if self.waiting == 0 and (self._burst.served or self._burst.refused):
            burst, self._burst = self._burst, _Burst()
            if burst.refused or max(burst.waits_ns, default=0) >= LOGGED_WAIT_NS:
                log.info("queue_drained", served=burst.served, refused=burst.refused,
                         **_percentiles(burst.waits_ns))


class Ticket:
    """One waiting request's place in the queue; ``serve()`` or ``close()`` ends it once."""

    __slots__ = ("_queue", "_since", "_open")

    def __init__(self, queue: WaitQueue) -> None:
        self._queue = queue
        self._since = queue.clock.monotonic()
        self._open = True

    def serve(self) -> None:
        """The wait is over: the request got a slot, or its own model load started."""
        if self._open:
            self._open = False
            self._queue._leave(round((self._queue.clock.monotonic() - self._since) * 1e9))

    def close(self) -> None:
        """The request left without being served (cancelled, failed, refused later)."""
        if self._open:
            self._open = False
            self._queue._leave(None)


class _Burst:
    """Figures since the queue was last empty."""

    def __init__(self) -> None:
        self.waits_ns: deque[int] = deque(maxlen=WINDOW)
        self.served = 0
        self.refused = 0


def _percentiles(waits_ns: Iterable[int]) -> dict[str, float]:
    """``wait_p50_ms``, ``wait_p99_ms``, ``wait_max_ms`` (nearest rank; 0 with no samples)."""
    ordered = sorted(waits_ns)
    if not ordered:
        return {"wait_p50_ms": 0.0, "wait_p99_ms": 0.0, "wait_max_ms": 0.0}

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6, 1)

    return {"wait_p50_ms": rank(0.5), "wait_p99_ms": rank(0.99),
            "wait_max_ms": round(ordered[-1] / 1e6, 1)}
