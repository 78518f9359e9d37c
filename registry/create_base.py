"""``/api/create`` from a model that is not local: pull it first, as Ollama's
``parseFromModel`` does, with the pull's progress inside the create stream.

Ollama's pull lines pass through except its final ``success`` (the create's own comes last,
so a client stopping at the first ``success`` still sees the whole create). A manifest the
registry does not have, or cannot be reached for, stays ``model 'X' not found`` (404) as
before pulls were tried, the reason appended when it was not a plain "does not exist".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from registry.blobs import is_digest
from registry.store import ModelStore
from services.errors import CorralError, ModelNotFoundError

Puller = Callable[[str], AsyncIterator[Any]]  # name -> the registry pull's Progress messages

log = structlog.get_logger()


async def pull_missing_base(store: ModelStore, pull: Puller,
                            text: str) -> AsyncIterator[dict[str, Any]]:
    """Pull ``text`` when it names a model that is not local; yield its progress dicts."""
    if not text or is_digest(text):
        return
    try:
        await store.resolve(text)
        return
    except ModelNotFoundError:
        pass
    progress = aiter(pull(text))
    try:
        first = await anext(progress)
        second = await anext(progress, None)  # the manifest fetch happens before this line
    except CorralError as exc:  # resolving the name or fetching the manifest failed
        log.info("create_base_pull_failed", model=text, error=exc.message)
        reason = "" if "file does not exist" in exc.message else f" (pulling it: {exc.message})"
        raise ModelNotFoundError(f"model '{text}' not found{reason}") from None
    log.info("create_pulling_base", model=text)
    for line in (first, second):
        if line is not None and line.status != "success":
            yield progress_fields(line)
    async for line in progress:
        if line.status != "success":
            yield progress_fields(line)


def progress_fields(progress: Any) -> dict[str, Any]:
    """A ``Progress`` message as the create stream's dict (empty fields left out)."""
    out: dict[str, Any] = {"status": progress.status}
    for key in ("digest", "total", "completed"):
        if value := getattr(progress, key):
            out[key] = value
    return out
