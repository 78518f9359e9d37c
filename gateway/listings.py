"""``/api/tags`` and ``/api/ps`` payloads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.scheduler import FOREVER_DELTA, LoadedRunner, Scheduler
from gateway.streaming import local_timestamp
from services.settings import FOREVER

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def details_dict(details: Any, *, parent_model: bool = True) -> dict[str, Any]:
    """``api.ModelDetails``: the first six fields always, the last two when known."""
    out = {"parent_model": details.parent_model if parent_model else "",
           "format": details.format or "gguf", "family": details.family,
           "families": list(details.families) or None,
           "parameter_size": details.parameter_size,
           "quantization_level": details.quantization_level}
    if details.context_length:
        out["context_length"] = details.context_length
    if details.embedding_length:
        out["embedding_length"] = details.embedding_length
    return out


def _modified_at(summary: Any) -> dt.datetime:
    if summary.HasField("modified_at"):
        modified: dt.datetime = summary.modified_at.ToDatetime(tzinfo=dt.timezone.utc)
        return modified
    return _EPOCH


def tag_dict(summary: Any) -> dict[str, Any]:
    """One ``/api/tags`` entry."""
    out = {"name": summary.name, "model": summary.name,
           "modified_at": local_timestamp(_modified_at(summary)), "size": summary.size,
           "digest": summary.digest, "details": details_dict(summary.details)}
    if summary.capabilities:  # omitempty, as in Ollama's ListModelResponse
        out["capabilities"] = list(summary.capabilities)
    return out


async def tags(registry: Any) -> dict[str, Any]:
    """Local models, newest first (``[]`` when there are none)."""
    models = sorted(await registry.list_models(), key=_modified_at, reverse=True)
    return {"models": [tag_dict(m) for m in models]}


def ps_dict(entry: LoadedRunner) -> dict[str, Any]:
    """One ``/api/ps`` entry, plus Corral's ``state``/``active``/``queued`` extras.

    ``size`` is the scheduler's footprint estimate (weights + KV cache + overhead, see
    gateway/memory.py), the resident size Ollama reports; all of it is CPU memory.
    """
    now = dt.datetime.now(dt.timezone.utc)
    ahead = FOREVER_DELTA if entry.keep_alive == FOREVER else dt.timedelta(seconds=entry.keep_alive)
    expires = entry.expires_at or now + ahead  # still loading or never idle yet: an estimate
    return {"name": entry.model.name, "model": entry.model.name,
            "size": entry.footprint.total if entry.footprint.weights else entry.model.size,
            "digest": entry.model.digest,
            "details": details_dict(entry.model.details, parent_model=False),
            "expires_at": local_timestamp(expires), "size_vram": 0,
            "context_length": entry.context_length,
            "state": entry.state.value, "active": entry.active, "queued": entry.queued}


def ps(scheduler: Scheduler) -> dict[str, Any]:
    """Loaded (and loading) runners, latest expiry first; Corral adds ``queue``: requests
    waiting now, the limit, refusals so far and recent queue-wait percentiles."""
    entries = sorted(scheduler.loaded(), key=lambda e: e.expires_at or dt.datetime.max.replace(
        tzinfo=dt.timezone.utc), reverse=True)
    return {"models": [ps_dict(e) for e in entries], "queue": scheduler.queue.stats()}
