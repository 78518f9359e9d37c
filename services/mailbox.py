"""A hand-off from callbacks that must never wait to the one task that consumes their output.

Both ends of a generation use it: the runner's slot (inference-thread callbacks → the RPC that
streams the answer) and the gateway's side of the multiplexed stream (the reader task → one
request's handler). A consumer that falls behind must cost one growing chunk, not a queue of
tiny messages, so ``merge`` may fold an item into the one still waiting before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Items in order for one consumer; ``put`` never blocks. ``merge(waiting, item)`` folds
    ``item`` into the last item not yet taken and says whether it did."""

    __slots__ = ("_items", "_ready", "_merge")

    def __init__(self, merge: Callable[[T, T], bool] | None = None) -> None:
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._merge = merge

    def put(self, item: T) -> None:
        if not (self._items and self._merge is not None and self._merge(self._items[-1], item)):
            self._items.append(item)
        self._ready.set()

    async def get(self) -> T:
        """The oldest item not yet taken, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()
