"""The engine's outbox: every slot's output of a step reaches the event loop in one wake-up."""

from __future__ import annotations

import asyncio

from runner.slots import Outbox


class CountingLoop:
    def __init__(self, closed: bool = False) -> None:
        self.wakeups, self.closed = [], closed

    def call_soon_threadsafe(self, callback, *args) -> None:
        if self.closed:
            raise RuntimeError("Event loop is closed")
        self.wakeups.append((callback, args))


def test_one_wakeup_per_flush_with_callbacks_in_order() -> None:
    loop, seen = CountingLoop(), []
    outbox = Outbox(loop)
    for i in range(4):  # four slots emitting in one step
        outbox.post(seen.append, i)
    outbox.flush()
    outbox.flush()  # nothing new: no wake-up
    assert len(loop.wakeups) == 1
    callback, args = loop.wakeups[0]
    callback(*args)
    assert seen == [0, 1, 2, 3]


def test_a_closed_loop_drops_the_output_quietly() -> None:
    outbox = Outbox(CountingLoop(closed=True))
    outbox.post(print, "unread")
    outbox.flush()


async def test_a_real_loop_runs_them() -> None:
    loop, seen = asyncio.get_running_loop(), []
    outbox = Outbox(loop)
    outbox.post(seen.append, "a")
    outbox.post(seen.append, "b")
    await asyncio.to_thread(outbox.flush)
    await asyncio.sleep(0)
    assert seen == ["a", "b"]


def test_an_interval_holds_output_back_except_first_text_ends_and_force() -> None:
    import time

    loop = CountingLoop()
    outbox = Outbox(loop, interval=0.05)
    outbox.post(print, "first text")
    outbox.urgent = True  # a generation's first text: at once
    outbox.flush()
    outbox.post(print, "more")
    outbox.flush()  # within the interval: held back
    assert len(loop.wakeups) == 1
    time.sleep(0.06)
    outbox.flush()  # the interval passed
    outbox.post(print, "done")
    outbox.flush(force=True)
    assert len(loop.wakeups) == 3 and not outbox.urgent
