"""The thin llama.cpp layer's own helpers (no model needed)."""

from __future__ import annotations

from runner.llama import _progress_callback


def test_load_progress_is_reported_at_most_once_per_interval() -> None:
    seen: list[float] = []
    callback = _progress_callback(seen.append, every_s=3600)
    assert callback(0.0, None) is True and callback(0.5, None) is True
    assert seen == [0.0]  # the first call always reports: the gateway's stall timer restarts
    every = _progress_callback(seen.append, every_s=0)
    every(0.25, None)
    every(1.0, None)
    assert seen == [0.0, 0.25, 1.0]


def test_a_failing_reporter_never_aborts_the_load() -> None:
    def broken(_progress: float) -> None:
        raise RuntimeError("stderr closed")

    assert _progress_callback(broken)(0.1, None) is True
