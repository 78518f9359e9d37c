"""Blob integrity: is a stored blob still the bytes its digest names?

Every blob row records when the file last hashed correctly and the file's size and mtime then.
Checking a model before a load costs one ``stat`` per blob: a file whose size or mtime no longer
match the record is hashed again before anything reads it, so a blob changed on disk fails the
load with a message naming its digest instead of feeding a runner garbage. Blobs indexed from an
Ollama store are trusted by size at first and hashed by one background task; ``corral verify``
hashes everything on demand and, with ``--repair``, moves corrupt files to ``quarantine/``
(a later pull fetches just those blobs again). Hashing always runs in worker threads, and two
callers wanting the same blob hashed share one pass.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import select, update

from registry import tables
from registry.blobs import is_digest
from registry.manifests import Manifest
from registry.store import ModelStore, row_name
from services.atomic_files import file_sha256
from services.errors import StoredBlobCorruptError

QUARANTINE_DIRNAME = "quarantine"

SOUND, CORRUPT, MISSING = "sound", "corrupt", "missing"

log = structlog.get_logger()


@dataclass(frozen=True)
class Verdict:
    """One blob's state: ``sound``, ``corrupt`` (``actual`` is what it hashes to) or
    ``missing``; ``quarantined`` when a repair moved it aside."""

    digest: str
    state: str
    size: int = 0
    actual: str = ""
    quarantined: bool = False


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int
    actual: str  # "" when sound


class BlobVerifier:
    """Checks, hashes and records blob integrity for one ``ModelStore``."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self.quarantine_dir = store.blobs.root.parent / QUARANTINE_DIRNAME
        self._seen: dict[str, _Seen] = {}  # what each file was when last checked
        self._hashing: dict[str, asyncio.Future[Verdict]] = {}
        self._wake = asyncio.Event()

    async def ensure_loadable(self, name: str, manifest: Manifest | None) -> None:
        """Raise ``StoredBlobCorruptError`` naming the first missing or corrupt blob."""
        if manifest is None:
            return
        digests = [manifest.config.digest, *(layer.digest for layer in manifest.layers)]
        for verdict in await self.check_many(digests):
            if verdict.state == MISSING:
                raise StoredBlobCorruptError(
                    f"model '{name}' cannot be loaded: blob {verdict.digest} is missing from the "
                    f"store; pull the model again to restore it")
            if verdict.state == CORRUPT:
                raise StoredBlobCorruptError(
                    f"model '{name}' cannot be loaded: blob {verdict.digest} is corrupt (its "
                    f"content hashes to {verdict.actual}); run `corral verify --repair`, then "
                    f"pull the model again")

    async def check_many(self, digests: Iterable[str]) -> list[Verdict]:
        """Each blob's state; cheap unless a file changed since it was last recorded."""
        digests = list(dict.fromkeys(digests))
        stats = await asyncio.to_thread(self._stat_all, digests)
        verdicts = []
        for digest in digests:
            stat = stats[digest]
            if stat is None:
                verdicts.append(Verdict(digest, MISSING))
                continue
            size, mtime_ns = stat
            seen = self._seen.get(digest)
            if seen is None or (seen.size, seen.mtime_ns) != (size, mtime_ns):
                seen = await self._recorded(digest, size, mtime_ns)
            if seen is None:  # changed since recorded: hash it before anyone reads it
                verdicts.append(await self.verify(digest))
            else:
                verdicts.append(Verdict(digest, CORRUPT if seen.actual else SOUND, size,
                                        seen.actual))
        return verdicts

    async def verify(self, digest: str) -> Verdict:
        """Hash the blob now and record the outcome (concurrent callers share one pass)."""
        future = self._hashing.get(digest)
        if future is None:
            future = asyncio.ensure_future(self._verify(digest))
            self._hashing[digest] = future
            future.add_done_callback(lambda _f: self._hashing.pop(digest, None))
        return await asyncio.shield(future)

    async def verify_all(self, name: str = "", *, repair: bool = False
                         ) -> AsyncIterator[tuple[str, Verdict, list[str]]]:
        """Hash one model's blobs, or every blob in the store; yield ``("hashing", verdict,
        [])`` before each (``size`` set) and ``("result", verdict, models using it)`` after.
        With ``repair``, corrupt files are moved to ``quarantine/``."""
        digests = await self._targets(name)
        users = await self._models_using(digests)
        sizes = await asyncio.to_thread(self._stat_all, digests)
        for digest in digests:
            size = stat[0] if (stat := sizes[digest]) else 0
            yield "hashing", Verdict(digest, "", size), []
            verdict = await self.verify(digest)
            if verdict.state == CORRUPT and repair:
                await self._quarantine(digest)
                verdict = Verdict(digest, CORRUPT, verdict.size, verdict.actual, quarantined=True)
            yield "result", verdict, users.get(digest, [])

    def wake(self) -> None:
        """New unverified blobs were indexed: let the background task look."""
        self._wake.set()

    async def run(self) -> None:
        """Hash every blob recorded as unverified, one at a time, forever (until cancelled)."""
        while True:
            self._wake.clear()
            for digest in await self._unverified():
                try:
                    await self.verify(digest)
                except Exception:  # one unreadable blob must not stop the rest
                    log.exception("blob_verify_failed", digest=digest)
            await self._wake.wait()

    async def _verify(self, digest: str) -> Verdict:
        path = self.store.blobs.path(digest)
        try:
            actual, size, mtime_ns = await asyncio.to_thread(_hash_file, path)
        except FileNotFoundError:
            self._seen.pop(digest, None)
            return Verdict(digest, MISSING)
        corrupt = actual != digest
        async with self.store.sessions.begin() as session:
            values: dict[str, object] = {"mtime_ns": mtime_ns,
                                         "corrupt_digest": actual if corrupt else None}
            if not corrupt:
                values["verified_at"] = tables.utcnow()
            await session.execute(
                update(tables.Blob).where(tables.Blob.digest == digest).values(**values))
        self._seen[digest] = _Seen(size, mtime_ns, actual if corrupt else "")
        if corrupt:
            log.error("blob_corrupt", digest=digest, actual=actual, path=str(path))
            return Verdict(digest, CORRUPT, size, actual)
        log.info("blob_verified", digest=digest, size=size)
        return Verdict(digest, SOUND, size)

    async def _recorded(self, digest: str, size: int, mtime_ns: int) -> _Seen | None:
        """The recorded state if it still describes the file; ``None`` when it does not."""
        async with self.store.sessions() as session:
            row = await session.get(tables.Blob, digest)
            if row is None or row.size != size:
                return None
            if row.mtime_ns is None:  # recorded before mtimes were (hashed as written): adopt
                row.mtime_ns = mtime_ns
                await session.commit()
            elif row.mtime_ns != mtime_ns:
                return None
            seen = _Seen(size, mtime_ns, row.corrupt_digest or "")
        self._seen[digest] = seen
        return seen

    async def _quarantine(self, digest: str) -> None:
        source = self.store.blobs.path(digest)
        target = self.quarantine_dir / source.name

        def move() -> None:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)

        await asyncio.to_thread(move)
        self._seen.pop(digest, None)
        self.store.models_changed()
        log.warning("blob_quarantined", digest=digest, path=str(target))

    async def _targets(self, name: str) -> list[str]:
        if name:
            manifest = Manifest.parse(await self.store.manifest_bytes(name))
            return list(dict.fromkeys([manifest.config.digest,
                                       *(layer.digest for layer in manifest.layers)]))
        async with self.store.sessions() as session:
            rows = set((await session.scalars(select(tables.Blob.digest))).all())
        on_disk = await asyncio.to_thread(_blob_files, self.store.blobs.root)
        return sorted(rows | on_disk)

    async def _models_using(self, digests: list[str]) -> dict[str, list[str]]:
        wanted = set(digests)
        users: dict[str, list[str]] = {}
        async with self.store.sessions() as session:
            for row in (await session.scalars(select(tables.Model))).all():
                manifest = row.manifest
                used = {manifest.config_digest, *(layer.blob_digest for layer in manifest.layers)}
                for digest in used & wanted:
                    users.setdefault(digest, []).append(row_name(row).display)
        return users

    async def _unverified(self) -> list[str]:
        async with self.store.sessions() as session:
            return list((await session.scalars(
                select(tables.Blob.digest).where(tables.Blob.verified_at.is_(None),
                                                 tables.Blob.corrupt_digest.is_(None)))).all())

    def _stat_all(self, digests: list[str]) -> dict[str, tuple[int, int] | None]:
        found: dict[str, tuple[int, int] | None] = {}
        for digest in digests:
            try:
                stat = os.stat(self.store.blobs.path(digest))
            except FileNotFoundError:
                found[digest] = None
            else:
                found[digest] = (stat.st_size, stat.st_mtime_ns)
        return found


def _hash_file(path: Path) -> tuple[str, int, int]:
    """``(sha256:<hex>, size, mtime_ns)`` of a file; blocking."""
    digest, stat = file_sha256(path)
    return digest, stat.st_size, stat.st_mtime_ns


def _blob_files(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {path.name.replace("-", ":", 1) for path in root.iterdir()
            if is_digest(path.name) and path.is_file()}
