"""Keep-alive policy: what happens to a runner once nobody uses it.

* **keep_alive** is sticky: the last request that set it wins (a duration past Go's maximum is
  forever). The timer starts when the last request detaches and is cancelled when one attaches;
  at 0 the runner stops at once, and a runner replaced by a bigger one stops once idle.
* **Pinned** (``CORRAL_PRELOAD``) runners keep_alive forever, whatever requests say, until an
  explicit unload (``/api/generate`` with ``keep_alive: 0``).
* **Abandoned loads.** A load nobody waits for any more (every request queued for it left) is
  aborted, unless it is a preload. ``want``/``unwant`` count the requests queued for a load.
"""

from __future__ import annotations

import collections
import datetime as dt

import structlog

from gateway.load_options import LoadOptions
from gateway.leases import FOREVER_DELTA, LoadedRunner, RunnerKey, RunnerState
from gateway.ports import Clock
from gateway.supervisor import RunnerSupervisor
from services.settings import FOREVER, MAX_DURATION_S

log = structlog.get_logger()


class KeepAlive:
    """Counts each runner's users and starts, cancels and fires its keep-alive timer."""

    def __init__(self, supervisor: RunnerSupervisor, clock: Clock) -> None:
        self.supervisor = supervisor
        self.clock = clock
        self._wanted: collections.Counter[RunnerKey] = collections.Counter()

    def attach(self, entry: LoadedRunner, keep_alive: float | None, pin: bool = False) -> None:
        """One more request uses ``entry``; it may change its keep_alive."""
        entry.refcount += 1
        entry.cancel_timer()
        entry.last_used = self.clock.monotonic()
        if pin:
            entry.pinned, entry.keep_alive = True, FOREVER
        elif keep_alive is not None and not entry.pinned:
            entry.keep_alive = keep_alive if keep_alive <= MAX_DURATION_S else FOREVER  # Go's max

    def detach(self, entry: LoadedRunner) -> None:
        entry.refcount -= 1
        entry.last_used = self.clock.monotonic()
        if entry.refcount == 0:
            self.supervisor.changed.set()
            self.on_idle(entry)

    def want(self, key: RunnerKey) -> None:
        """One more request queued for a load of ``key`` (it keeps the load alive)."""
        self._wanted[key] += 1

    def unwant(self, key: RunnerKey) -> None:
        """One request fewer queued for a load of ``key``; the last one to leave may abort it."""
        self._wanted[key] -= 1
        if self._wanted[key] == 0:
            del self._wanted[key]
            entry = self.supervisor.runners.get(key)
            if entry and entry.refcount == 0 and entry.state is RunnerState.LOADING:
                self.on_idle(entry)

    def on_idle(self, entry: LoadedRunner) -> None:
        """Nobody uses ``entry`` any more: start its keep-alive, stop it, or abort its load."""
        if entry.state is RunnerState.READY:
            if entry.retired:
                self.supervisor.background(self.supervisor.stop(entry, "replaced"))
            else:
                self._schedule_expiry(entry)
        elif (entry.state is RunnerState.LOADING and not entry.pinned
              and not self._wanted.get(entry.key)):
            self.supervisor.abort_load(entry)

    def retire(self, old: LoadedRunner, load: LoadOptions) -> None:
        """A runner with a larger context or other load options replaces ``old`` (it stops
        once idle)."""
        log.info("runner_replaced", model=old.spec.model_name, runner_pid=old.pid,
                 old_num_ctx=old.spec.ctx_size, changed=load.differences(old.spec))
        self.supervisor.drop(old)
        old.retired = True
        if old.refcount == 0:
            self.on_idle(old)

    def unload(self, digest: str) -> None:
        """Unload every runner of this model as soon as it is idle (``keep_alive: 0``)."""
        for entry in [e for e in self.supervisor.resident() if e.key[0] == digest]:
            entry.keep_alive, entry.pinned = 0, False
            if entry.refcount == 0:
                self.on_idle(entry)

    def _schedule_expiry(self, entry: LoadedRunner) -> None:
        """Start the keep-alive timer: the runner stops when it runs out (at once for 0)."""
        entry.cancel_timer()
        now = self.clock.now()
        if entry.keep_alive == FOREVER:
            entry.expires_at = now + FOREVER_DELTA
        elif entry.keep_alive <= 0:
            entry.expires_at = now
            self._expire(entry)
        else:
            entry.expires_at = now + dt.timedelta(seconds=entry.keep_alive)
            entry.timer = self.clock.call_later(entry.keep_alive, lambda: self._expire(entry))

    def _expire(self, entry: LoadedRunner) -> None:
        if entry.refcount == 0 and entry.state is RunnerState.READY:
            self.supervisor.background(self.supervisor.stop(entry, "expired"))
