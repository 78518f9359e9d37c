"""Per-key limits: requests per minute (a token bucket) and generations running at once.

State lives in this gateway process, keyed by key name: a fleet of N gateways behind a load
balancer lets a key make up to N times its limit, which is the usual trade for not putting a
shared store on every request's path. A limit of 0 means unlimited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class RateLimited(Exception):  # noqa: N818 - a signal carrying the 429's details
    """The key is over a limit; ``retry_after`` is whole seconds until it may try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KeyLimiter:
    """Token buckets and concurrency counters for every key seen by this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._running: dict[str, int] = {}

    def take(self, name: str, per_minute: int) -> None:
        """Spend one request of ``name``'s budget; ``RateLimited`` when none is left.

        The bucket holds ``per_minute`` requests and refills continuously, so a key may burst
        its whole minute's budget and then goes on at the steady rate.
        """
        if per_minute <= 0:
            return
        now, rate = self._clock(), per_minute / 60.0
        bucket = self._buckets.setdefault(name, _Bucket(float(per_minute), now))
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            raise RateLimited(f"rate limit exceeded: key {name!r} may make {per_minute} "
                              "requests per minute", max(1, wait))
        bucket.tokens -= 1.0

    @contextmanager
    def generation(self, name: str, limit: int) -> Iterator[None]:
        """Hold one of ``name``'s ``limit`` concurrent generations for the block."""
        running = self._running.get(name, 0)
        if 0 < limit <= running:
            raise RateLimited(f"too many concurrent requests: key {name!r} may run {limit} "
                              "generation(s) at once", 1)
        self._running[name] = running + 1
        try:
            yield
        finally:
            left = self._running[name] - 1
            if left:
                self._running[name] = left
            else:
                del self._running[name]
