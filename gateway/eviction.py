"""Eviction policy: which idle runner gives way when a new one does not fit.

A new runner fits when fewer than ``OLLAMA_MAX_LOADED_MODELS`` are resident and its estimated
footprint fits the memory left (``gateway.memory.shortfall``). Otherwise idle runners are stopped
least recently used first, pinned (``CORRAL_PRELOAD``) ones last — Ollama evicts the shortest
keep_alive first; LRU keeps the model you are using warm. If every runner is busy the load waits
for one to become idle; with nothing left to evict it goes ahead, with a warning.
"""

from __future__ import annotations

import structlog

from gateway.leases import LoadedRunner, RunnerState
from gateway.memory import Footprint, shortfall
from gateway.supervisor import RunnerSupervisor

log = structlog.get_logger()


class Eviction:
    """Makes room for one more runner under the model limit and the memory estimate."""

    def __init__(self, supervisor: RunnerSupervisor, max_loaded_models: int) -> None:
        self.supervisor = supervisor
        self.max_loaded_models = max_loaded_models

    async def make_room(self, need: Footprint, model: str) -> None:
        """Evict idle runners (LRU, pinned last) until one more fits; wait while all are busy."""
        supervisor = self.supervisor
        while True:
            resident = supervisor.resident()
            short = shortfall(need, supervisor.memory.available(),
                              [e.footprint for e in resident])
            full = len(resident) >= self.max_loaded_models
            if not full and short <= 0:
                return
            if victim := eviction_candidate(resident):
                because = "model_limit" if full else "memory"
                log.info("model_evicting", model=victim.spec.model_name, for_model=model,
                         because=because, short_bytes=max(short, 0))
                supervisor.observer.evicting(victim, because)
                await supervisor.stop(victim, "evicted")
            elif not resident:
                log.warning("memory_estimate_exceeds_available", model=model,
                            need_bytes=need.total, short_bytes=short)
                return
            else:
                supervisor.changed.clear()
                await supervisor.changed.wait()


def eviction_candidate(resident: list[LoadedRunner]) -> LoadedRunner | None:
    """The idle runner to evict first: unpinned before pinned, least recently used first."""
    idle = [e for e in resident if e.refcount == 0 and e.state is RunnerState.READY]
    return min(idle, key=lambda e: (e.pinned, e.last_used)) if idle else None
