"""Blob uploads and the startup prune: the parts of the blob store's life outside manifests.

``put_blob`` stores an upload only when its bytes hash to the digest it was sent under (a
mismatch leaves nothing behind). ``prune_at_startup`` is Ollama's ``PruneLayers``: blob files no
manifest uses (neither a manifest file on disk nor a manifest row), older than an hour (so a
create that uploads, then builds its manifest, is never raced), are removed unless
``OLLAMA_NOPRUNE``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from registry.blobs import BlobStore, canonical_digest, is_digest
from registry.refs import drop_orphan_manifests, forget_blobs, referenced_blobs
from registry.store import ModelStore
from services.errors import InvalidRequestError

PRUNE_GRACE_SECONDS = 3600.0  # Ollama's layerPruneGracePeriod

log = structlog.get_logger()


@dataclass(frozen=True)
class BlobStat:
    """Whether a blob is stored, its size and its absolute path."""

    exists: bool
    size: int
    path: Path


def checked_digest(digest: str) -> str:
    """``sha256:<hex>`` for a well-formed digest; Ollama's ``invalid digest format`` otherwise."""
    try:
        return canonical_digest(digest)
    except InvalidRequestError:
        raise InvalidRequestError("invalid digest format") from None


async def stat_blob(blobs: BlobStore, digest: str) -> BlobStat:
    """Stat the blob ``digest`` (validated first: no path outside the blob directory)."""
    digest = checked_digest(digest)
    size = await blobs.size(digest)
    return BlobStat(exists=size is not None, size=size or 0, path=blobs.path(digest).resolve())


async def put_blob(blobs: BlobStore, digest: str,
                   chunks: AsyncIterable[bytes]) -> tuple[bool, int]:
    """Store ``chunks`` as blob ``digest``; return ``(created, size)``.

    An already stored blob is not read again (``created`` False), as Ollama answers 200
    without reading the body. Raises ``BlobCorruptError`` (``digest mismatch, expected "…",
    got "…"``) when the bytes hash differently; the temp file is removed either way.
    """
    digest = checked_digest(digest)
    if (size := await blobs.size(digest)) is not None:
        return False, size
    size = await blobs.write_stream(digest, chunks)
    log.info("blob_uploaded", digest=digest, size=size)
    return True, size


async def prune_at_startup(store: ModelStore, *, grace: float = PRUNE_GRACE_SECONDS) -> list[str]:
    """Remove blob files older than ``grace`` seconds that nothing uses; return their digests.

    Ollama's rules: a no-op with ``OLLAMA_NOPRUNE``; skipped whole when any manifest file
    cannot be read (it might name any blob); a blob survives if any manifest file on disk
    (``manifests/*/*/*/*``, Ollama's models included) or any manifest row uses it. What would
    go is logged before it goes. Only ``sha256-<hex>`` files are candidates: temp files are
    swept by ``BlobStore.remove_stale_temp_files`` and partial downloads are kept for resume.
    """
    if store.noprune:
        log.info("startup_prune_skipped", reason="OLLAMA_NOPRUNE")
        return []
    async with store.write_lock:
        scan = await asyncio.to_thread(store.manifest_files.scan)
        if scan.errors:
            log.warning("startup_prune_skipped", reason="unreadable manifest files",
                        manifests={str(path): error for path, error in scan.errors})
            return []
        async with store.sessions.begin() as session:
            dropped = await drop_orphan_manifests(session)
            referenced = await referenced_blobs(session) | scan.referenced()
            old = await asyncio.to_thread(_old_blob_files, store.blobs.root, time.time() - grace)
            unused = sorted(set(old) - referenced)
            if unused:
                log.info("startup_prune_planned", blobs=unused, grace_seconds=grace)
            await forget_blobs(session, unused)
        removed = await store.unlink_blobs(unused)
    if removed or dropped:
        log.info("startup_prune_done", blobs=len(removed), manifests=dropped)
    return removed


def _old_blob_files(root: Path, older_than: float) -> list[str]:
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if is_digest(path.name) and path.is_file() and path.stat().st_mtime < older_than:
            found.append(canonical_digest(path.name))
    return found
