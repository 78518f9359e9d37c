"""The scheduler's time source (``gateway.ports.Clock``): the event loop's clock and UTC.

Keep-alive timers, restart backoff and load timings read it, so tests can drive them with a
manual clock instead of sleeping."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import time
from collections.abc import Callable


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
