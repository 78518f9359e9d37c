"""The one polling helper: wait until a condition holds, or fail saying what never happened.

Prefer an event to a poll wherever the code under test can signal one; poll only what another
process or an HTTP surface exposes. ``until`` blocks (for tests that drive real processes);
``until_async`` yields to the event loop between tries (for in-process aiohttp/grpc tests).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, *,
          what: str = "condition", retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """``predicate()``'s first truthy value, polling every ``interval`` seconds.

    ``retry_on`` exceptions count as "not yet" (a port refusing connections while a process
    restarts). Raises ``AssertionError`` after ``timeout`` seconds.
    """
    for _ in _tries(timeout):
        if value := _attempt(predicate, retry_on):
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout:g}s")


async def until_async(predicate: Callable[[], T | Awaitable[T]], timeout: float = 2.0,
                      interval: float = 0.01, *, what: str = "condition") -> T:
    """``until`` for code on the event loop: sleeps with ``asyncio.sleep`` between tries.

    ``predicate`` may be a coroutine function (e.g. one that scrapes an HTTP endpoint)."""
    for _ in _tries(timeout):
        outcome = predicate()
        if value := (await outcome if inspect.isawaitable(outcome) else outcome):
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout:g}s")


def _tries(timeout: float) -> Iterator[None]:
    """One item per try until ``timeout`` has passed; always at least one, and one at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield None
    yield None


def _attempt(predicate: Callable[[], T], retry_on: tuple[type[BaseException], ...]) -> T | None:
    try:
        return predicate()
    except retry_on:
        return None
