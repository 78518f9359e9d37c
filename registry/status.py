"""``GetStatus``: what readiness probes and the gateway's ``/metrics`` ask of the registry.

The schema revision is read from the database on every call (not remembered from startup), so
a database swapped or rolled back under a running registry reports unready. The blob store is
measured by listing its directory: it may hold blobs no row describes yet (an Ollama store
being adopted), and they take disk space all the same.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry import tables
from registry.db import alembic_config
from registry.store import ModelStore
from services.context import ServicerContext
from services.pb.corral.registry.v1 import registry_pb2 as pb

_BLOB_NAME = re.compile(r"sha256-[0-9a-f]{64}")


@functools.cache
def schema_head() -> str:
    """The newest revision of the ``migrations`` package (read once per process)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def _current_revision(session: Session) -> str:
    return MigrationContext.configure(session.connection()).get_current_revision() or ""


def blob_usage(root: Path) -> tuple[int, int]:
    """(count, bytes) of the finished blob files under ``root`` (temp and partial files skipped)."""
    count = size = 0
    try:
        entries = os.scandir(root)
    except FileNotFoundError:
        return 0, 0
    with entries:
        for entry in entries:
            if _BLOB_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                count += 1
                size += entry.stat(follow_symlinks=False).st_size
    return count, size


async def registry_status(store: ModelStore) -> pb.GetStatusResponse:
    async with store.sessions() as session:
        revision = await session.run_sync(_current_revision)
        models = await session.scalar(select(func.count()).select_from(tables.Model))
    blobs, blob_bytes = await asyncio.to_thread(blob_usage, store.blobs.root)
    return pb.GetStatusResponse(schema_revision=revision, schema_head=schema_head(),
                                models=models or 0, blobs=blobs, blob_bytes=blob_bytes)


class StatusServicerMixin:
    """GetStatus over ``self._store``."""

    _store: ModelStore

    async def GetStatus(self, request: pb.GetStatusRequest,
                        context: ServicerContext) -> pb.GetStatusResponse:
        """Schema revision (and the head it should be at), model count, blob-store size."""
        return await registry_status(self._store)
