"""A clock that moves only when a test says so (``gateway.ports.Clock``), and ``settle``.

Scheduler tests used to order events with fixed ``asyncio.sleep`` calls, which are slow and flaky
on a loaded machine. With ``ManualClock`` a keep-alive timer or a restart backoff fires exactly when
the test calls ``advance``; ``timer_set`` tells a test the scheduler has started waiting. Tests
wait for what they expect with events (a fake process's ``wait()``, a runner's ``exited``, a
spawner's ``until_spawned``); only to assert that something did *not* happen do they ``settle``."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
from collections.abc import Callable

EPOCH = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)  # "forever" (292 years on) ends in 2318


class ManualTimer:
    """A pending ``call_later``; ordered by deadline, then by creation."""

    def __init__(self, when: float, order: int, callback: Callable[[], object]) -> None:
        self.when, self.order, self.callback = when, order, callback
        self.cancelled = False

    def __lt__(self, other: ManualTimer) -> bool:
        return (self.when, self.order) < (other.when, other.order)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Monotonic time starts at ``start`` seconds; wall time at ``EPOCH`` plus the same offset."""

    def __init__(self, start: float = 1000.0) -> None:
        self._start = self._now = start
        self._timers: list[ManualTimer] = []
        self._order = itertools.count()
        self._timer_set = asyncio.Event()

    def monotonic(self) -> float:
        return self._now

    def now(self) -> dt.datetime:
        return EPOCH + dt.timedelta(seconds=self._now - self._start)

    def call_later(self, delay: float, callback: Callable[[], object]) -> ManualTimer:
        timer = ManualTimer(self._now + max(0.0, delay), next(self._order), callback)
        heapq.heappush(self._timers, timer)
        self._timer_set.set()
        return timer

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)  # the real clock yields too
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_later(delay, wake)
        try:
            await woken
        finally:
            timer.cancel()

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running every timer due by then in deadline order."""
        until = self._now + seconds
        while self._timers and self._timers[0].when <= until:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._now = max(self._now, timer.when)
                timer.callback()
        self._now = until

    @property
    def pending(self) -> list[float]:
        """Delays (from now) of the timers still to run, soonest first."""
        return sorted(round(t.when - self._now, 9) for t in self._timers if not t.cancelled)

    async def timer_set(self) -> float:
        """Wait until some timer is pending; the delay of the soonest one."""
        while not self.pending:
            self._timer_set.clear()
            await self._timer_set.wait()
        return self.pending[0]


SETTLE_STEPS = 20


async def settle() -> None:
    """Let every task that can make progress do so before a test asserts that something did
    *not* happen (no event can signal a non-event). It yields to the event loop a fixed number
    of times — a count of loop steps, never a duration — which is more than the longest chain of
    hand-offs between scheduler tasks (a request, its load task, the spawn, the watch)."""
    for _ in range(SETTLE_STEPS):
        await asyncio.sleep(0)  # a bare yield: lets the other ready tasks run once
