"""A per-step timer for the token loop (``--profile``): where each engine step's time goes.

The loop calls ``lap(phase)`` after each part of a step; the time since the previous lap is
added to that phase. When the runner goes idle (or every ``REPORT_STEPS`` steps) the totals are
logged as one ``step_profile`` event — per phase: milliseconds, microseconds per step and per
token, and share of the step — and reset. ``python -m bench --profile`` reads those events.

Disabled (the default), ``lap`` is a no-op method: a few dozen nanoseconds per call.
Shares are what to compare on a busy machine: absolute times there include preemption.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import time

import structlog

log = structlog.get_logger()

REPORT_STEPS = 2000
PHASES = ("admit", "image", "batch", "decode", "sample", "text", "flush")


def name_os_thread(name: str) -> None:
    """Give the calling thread an OS-level name (``/proc/<pid>/task/<tid>/comm``), so per-thread
    CPU time can be told apart; ggml's worker threads, started from it, inherit the name."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


class StepTimer:
    """Accumulates wall time per phase of the engine's steps."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:  # no-ops bound over the methods: off costs no branch per call
            self.lap = self._off  # type: ignore[method-assign]
            self.step_done = self._off_step  # type: ignore[method-assign]
        self._totals = dict.fromkeys(PHASES, 0)
        self._steps = self._tokens = self._slots = 0
        self._last = time.perf_counter_ns()

    def start(self) -> None:
        """A step begins (after the loop waited for work: that wait is nobody's phase)."""
        self._last = time.perf_counter_ns()

    def lap(self, phase: str) -> None:
        now = time.perf_counter_ns()
        self._totals[phase] += now - self._last
        self._last = now

    def step_done(self, tokens: int, slots: int) -> None:
        """One step ended having sampled ``tokens`` tokens across ``slots`` busy slots."""
        self._steps += 1
        self._tokens += tokens
        self._slots += slots
        if self._steps >= REPORT_STEPS:
            self.report()

    def report(self) -> None:
        """Log the totals since the last report (if any step ran) and start afresh."""
        if not self.enabled or not self._steps:
            return
        total = sum(self._totals.values()) or 1
        steps, tokens = self._steps, max(self._tokens, 1)
        log.info("step_profile", steps=steps, tokens=self._tokens,
                 mean_slots=round(self._slots / steps, 2),
                 step_us=round(total / steps / 1000, 1),
                 phases={p: {"ms": round(ns / 1e6, 1), "us_per_step": round(ns / steps / 1000, 1),
                             "us_per_token": round(ns / tokens / 1000, 1),
                             "share": round(ns / total, 4)}
                         for p, ns in self._totals.items()})
        self._totals = dict.fromkeys(PHASES, 0)
        self._steps = self._tokens = self._slots = 0

    @staticmethod
    def _off(phase: str) -> None:
        return None

    @staticmethod
    def _off_step(tokens: int, slots: int) -> None:
        return None
