"""The scheduler's time source (``Clock``, one of the ports in ``gateway.ports``): the event loop's clock and UTC.

Keep-alive timers, restart backoff and load timings read it, so tests can drive them with a
manual clock instead of sleeping."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Time as the scheduler reads it: keep-alive timers, restart backoff, load times.

    Injected so tests advance time instead of sleeping (``tests/gateway/clock.py``)."""

    def monotonic(self) -> float: ...

    def now(self) -> dt.datetime: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable: ...

    async def sleep(self, delay: float) -> None: ...


class Cancellable(Protocol):
    """A pending timer (``asyncio.TimerHandle`` has this shape)."""

    def cancel(self) -> None: ...


class SystemClock:
    """Real time. Timers run in an empty log context: they outlive the request that set them."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback,
                                                     context=contextvars.Context())

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)
