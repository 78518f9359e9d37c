"""The digest-addressed blob store: ``<models_dir>/blobs/sha256-<64 hex>``, as Ollama lays it out.

Every path is built from a digest that passed a strict regex first. Writes go to a
``.tmp-<random>`` file in the same directory, are hashed while written, verified, fsynced and
renamed into place, then the directory is fsynced: a blob file either is complete and correct
or does not exist. Hashing, copying and fsync run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from services.atomic_files import (TEMP_PREFIX, Hasher, publish, read_sha256, sync_file, temp_path,
                                   write_hashed)
from services.errors import BlobCorruptError, InvalidRequestError
CHUNK_SIZE = 1 << 20
_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")

log = structlog.get_logger()


def canonical_digest(digest: str) -> str:
    """``sha256:<hex>`` for either spelling; ``InvalidRequestError`` for anything else."""
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise InvalidRequestError(f"invalid digest: {digest!r}")
    return f"sha256:{match.group(1)}"


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    """Whether ``text`` is ``sha256:<hex>`` or ``sha256-<hex>`` with 64 lower-case hex digits."""
    return _DIGEST.fullmatch(text) is not None


class BlobStore:
    """Content-addressed files under one directory; safe against torn and mismatched writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Blobs this process hashed as it wrote them: digest -> the file's mtime_ns then. The
        # store records them as verified when a manifest first uses them (``take_fresh``).
        self._fresh: dict[str, int] = {}

    def take_fresh(self, digest: str, mtime_ns: int) -> bool:
        """Whether this process wrote and hashed ``digest`` and the file is unchanged since."""
        return self._fresh.pop(canonical_digest(digest), None) == mtime_ns

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists); validates first."""
        return self.root / canonical_digest(digest).replace(":", "-", 1)

    async def size(self, digest: str) -> int | None:
        """The blob's size in bytes, or ``None`` when it is not stored."""
        path = self.path(digest)
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return None
        return stat.st_size

    async def read(self, digest: str) -> bytes:
        """A (small) blob's whole content: configs, templates, params."""
        return await asyncio.to_thread(self.path(digest).read_bytes)

    async def write_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return its ``(digest, size)``."""
        digest = await asyncio.to_thread(self._store, lambda f, h: write_hashed(f, h, data))
        return digest, len(data)

    async def copy_file(self, source: Path, expected: str | None = None) -> tuple[str, int]:
        """Copy ``source`` into the store, hashing as it goes; return ``(digest, size)``.

        With ``expected``, an already stored blob is not copied again, and a mismatch raises
        ``BlobCorruptError`` and leaves nothing behind.
        """
        if expected is not None and (size := await self.size(expected)) is not None:
            return canonical_digest(expected), size
        return await asyncio.to_thread(self._copy_file, source, expected)

    async def write_stream(self, expected: str, chunks: AsyncIterable[bytes]) -> int:
        """Store a stream of chunks that must hash to ``expected``; return the size.

        An existing blob is kept and the stream still drained and verified, so a caller can
        never store bytes under a digest they do not match.
        """
        expected = canonical_digest(expected)
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        tmp = temp_path(self.root)
        hasher, size = hashlib.sha256(), 0
        try:
            with await asyncio.to_thread(open, tmp, "xb") as f:
                async for chunk in chunks:
                    await asyncio.to_thread(write_hashed, f, hasher, chunk)
                    size += len(chunk)
                await asyncio.to_thread(sync_file, f)
            await asyncio.to_thread(self._commit, tmp, expected, hasher.hexdigest())
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        return size

    async def adopt_file(self, path: Path, expected: str, *, sha256_hex: str | None = None) -> int:
        """Move ``path`` (a finished download in this store's directory) in as ``expected``.

        The file is hashed first, unless the caller hashed every byte it wrote and passes that
        digest as ``sha256_hex``; on a mismatch ``BlobCorruptError`` is raised and ``path``
        deleted, so bytes never enter the store under a digest they do not match. ``path`` is
        gone afterwards either way. Returns the blob's size.
        """
        return await asyncio.to_thread(self._adopt, path, canonical_digest(expected), sha256_hex)

    def _adopt(self, path: Path, expected: str, sha256_hex: str | None) -> int:
        try:
            with open(path, "rb") as f:
                if sha256_hex is None:
                    sha256_hex = read_sha256(f)
                sync_file(f)
            self._commit(path, expected, sha256_hex)
        finally:
            path.unlink(missing_ok=True)
        target = self.path(expected)
        os.utime(target)  # a resumed download's file may be old: keep it out of the prune window
        stat = target.stat()
        if expected in self._fresh:
            self._fresh[expected] = stat.st_mtime_ns
        return stat.st_size

    def remove_stale_temp_files(self, min_age_s: float = 0.0) -> int:
        """Delete temp files left by interrupted writes; call before serving. Blocking.

        ``min_age_s`` spares younger files: with replicas sharing this directory, a fresh temp
        file is another replica's write in progress."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - min_age_s
        stale = [p for p in self.root.iterdir() if p.name.startswith(TEMP_PREFIX)
                 and (not min_age_s or _mtime(p) < cutoff)]
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            log.info("stale_temp_files_removed", count=len(stale), blobs_dir=str(self.root))
        return len(stale)

    def _copy_file(self, source: Path, expected: str | None) -> tuple[str, int]:
        with open(source, "rb") as src:
            def copy(f: BinaryIO, hasher: Hasher) -> None:
                while chunk := src.read(CHUNK_SIZE):
                    write_hashed(f, hasher, chunk)

            digest = self._store(copy, expected)
        return digest, self.path(digest).stat().st_size

    def _store(self, fill: Callable[[BinaryIO, Any], None], expected: str | None = None) -> str:
        """Let ``fill(file, hasher)`` write a temp file, then commit it; return the digest.

        Blocking. The digest is ``expected`` when given (verified), else the content's own.
        """
        expected = canonical_digest(expected) if expected is not None else None
        self.root.mkdir(parents=True, exist_ok=True)
        tmp, hasher = temp_path(self.root), hashlib.sha256()
        try:
            with open(tmp, "xb") as f:
                fill(f, hasher)
                sync_file(f)
            digest = expected or "sha256:" + hasher.hexdigest()
            self._commit(tmp, digest, hasher.hexdigest())
            return digest
        finally:
            tmp.unlink(missing_ok=True)

    def _commit(self, tmp: Path, expected: str, sha256_hex: str) -> None:
        """Verify ``tmp`` hashed to ``expected`` and rename it into place. Blocking."""
        actual = "sha256:" + sha256_hex
        if actual != expected:
            log.warning("blob_digest_mismatch", expected=expected, actual=actual)
            raise BlobCorruptError(f'digest mismatch, expected "{expected}", got "{actual}"')
        target = self.path(expected)
        if target.exists():
            return
        publish(tmp, target)
        self._fresh[expected] = target.stat().st_mtime_ns
        log.debug("blob_stored", digest=expected)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")



