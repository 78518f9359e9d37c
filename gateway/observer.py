"""What the Scheduler tells whoever watches it (``gateway/metrics.py`` does): a small hook
interface, so that the scheduler knows nothing of Prometheus and tests can pass nothing.

Every method is a no-op here. Hooks are called on the event loop and must not block or raise.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from gateway.runners import RunnerSpec
from services.pb.corral.runner.v1 import runner_pb2 as pb


class ObservedRunner(Protocol):
    """What a hook learns of a runner (``gateway.leases.LoadedRunner``, whose module imports
    this one: a Protocol keeps the two from importing each other)."""

    @property
    def key(self) -> Hashable: ...
    @property
    def spec(self) -> RunnerSpec: ...


class RequestTracker:
    """One request's passage through the scheduler: queued, then holding a slot, then done.

    Used as a context manager around the whole ``acquire`` block, so that leaving (normally,
    by error or by cancellation) always ends the request in the figures.
    """

    def __enter__(self) -> RequestTracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """The request let go of its slot (or gave up waiting for one)."""

    def started(self, wait_ns: int) -> None:
        """The request holds a slot after waiting ``wait_ns`` (a load, a slot, a backoff)."""

    def first_token(self) -> None:
        """The first generated text arrived from the runner."""

    def generated(self, done: pb.Done) -> None:
        """The runner's terminal ``Done`` frame (token counts and durations)."""

    def embedded(self, prompt_tokens: int) -> None:
        """An embedding call evaluated ``prompt_tokens``."""


class SchedulerObserver:
    """Runner lifecycle events; ``entry`` is the scheduler's ``LoadedRunner``."""

    def request(self, model: str) -> RequestTracker:
        """A tracker for a new request for ``model``."""
        return RequestTracker()

    def loaded(self, entry: ObservedRunner, seconds: float) -> None:
        """A runner became ready ``seconds`` after its load started."""

    def load_failed(self, entry: ObservedRunner) -> None:
        """A load failed (crashed, stalled or could not start); not called for aborted loads."""

    def starting(self, entry: ObservedRunner) -> None:
        """A runner process is about to be spawned for ``entry``."""

    def crashed(self, entry: ObservedRunner, returncode: int | None) -> None:
        """A runner exited without being asked to."""

    def evicting(self, entry: ObservedRunner, because: str) -> None:
        """An idle runner is stopped to make room (``model_limit`` or ``memory``)."""

    def stopped(self, entry: ObservedRunner, reason: str) -> None:
        """A runner process is gone (``expired``, ``evicted``, ``replaced``, ``exited``, ...)."""
