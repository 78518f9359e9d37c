"""Keeping the database in step with the manifest files, so an Ollama store is a Corral store.

The manifest files (``manifests/<host>/<ns>/<model>/<tag>``) are the interchange format and the
database is the index. A sync, run at start, on ``corral rescan`` and whenever the tree's
fingerprint changes (polled: a few ``stat`` calls, no watcher thread or dependency), makes the
rows match the files:

- a file with no row, or whose bytes differ from its row's manifest (Ollama pulled or created
  it), is indexed: its blobs are referenced in place (no copy), trusted by size now and hashed
  later by the background verifier;
- a row whose file disappeared after we wrote or read it (``ollama rm``) is dropped — its rows
  only: whatever blob files remain are the prune's business, under Ollama's rules;
- a row that never had a file (written before store interop) gets one.

Nothing here deletes or rewrites a file another program wrote. A file that cannot be read is
left alone and so is the row of its name, until it reads again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import select

from registry import tables
from registry import queries
from registry.gguf_info import GGUFInfo
from registry.gguf_kv import read_gguf_info
from registry.manifest_files import ManifestFile
from registry.manifests import MODEL_MEDIA_TYPE, Descriptor
from registry.refs import release_manifest
from registry.store import ModelStore, row_name
from services.errors import InvalidModelNameError
from services.names import ModelName

POLL_SECONDS = 2.0

log = structlog.get_logger()


@dataclass
class SyncReport:
    """What one sync changed, by model display name."""

    indexed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    exported: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # manifest path -> why

    @property
    def changed(self) -> bool:
        return bool(self.indexed or self.removed or self.exported)


@dataclass(frozen=True)
class _Row:
    name_display: str
    manifest_digest: str
    file_digest: str | None
    content: bytes
    name: ModelName


class ManifestIndexer:
    """Syncs ``store``'s rows with its manifest tree; ``on_indexed`` hears of new blobs."""

    def __init__(self, store: ModelStore, *, on_indexed: Callable[[], None] | None = None) -> None:
        self.store = store
        self._on_indexed = on_indexed

    async def sync(self) -> SyncReport:
        """One full pass (see the module docstring), under the store's write lock."""
        report = SyncReport()
        tree = self.store.manifest_files
        async with self.store.write_lock:
            scan = await asyncio.to_thread(tree.scan)
            unreadable = set()
            for path, error in scan.errors:
                report.skipped[str(path)] = f"unreadable: {error}"
                try:
                    unreadable.add(tree.name_of(path).key)
                except (InvalidModelNameError, ValueError):
                    pass
            files: dict[str, ManifestFile] = {}
            for found in scan.files:
                if (first := files.get(found.name.key)) is not None:
                    report.skipped[str(found.path)] = f"same name as {first.path}"
                    continue
                files[found.name.key] = found
            rows = await self._rows()
            for key, found in files.items():
                row = rows.get(key)
                if row is not None and row.manifest_digest == found.digest:
                    if row.file_digest != found.digest:
                        await self._set_file_digest(key, found.digest)
                    continue
                if await self._index(found, report):
                    report.indexed.append(found.name.display)
            for key, row in rows.items():
                if key in files or key in unreadable:
                    continue
                if row.file_digest is None:
                    await asyncio.to_thread(tree.write, row.name, row.content)
                    await self._set_file_digest(key, row.manifest_digest)
                    report.exported.append(row.name_display)
                else:
                    await self._drop(key)
                    report.removed.append(row.name_display)
            if report.changed:
                self.store.models_changed()
        if report.changed or report.skipped:
            log.info("manifests_synced", indexed=report.indexed, removed=report.removed,
                     exported=report.exported, skipped=report.skipped)
        if report.indexed and self._on_indexed is not None:
            self._on_indexed()
        return report

    async def watch(self, interval: float = POLL_SECONDS) -> None:
        """Sync whenever the manifest tree's fingerprint changes; runs until cancelled."""
        tree = self.store.manifest_files
        last = await asyncio.to_thread(tree.signature)
        while True:
            await asyncio.sleep(interval)
            now = await asyncio.to_thread(tree.signature)
            if now == last:
                continue
            last = now
            try:
                await self.sync()
            except Exception:  # keep watching; the next change retries
                log.exception("manifest_sync_failed")

    async def _rows(self) -> dict[str, _Row]:
        async with self.store.sessions() as session:
            rows = (await session.scalars(select(tables.Model))).all()
            return {row.name_key: _Row(name_display=row_name(row).display,
                                       manifest_digest=row.manifest_digest,
                                       file_digest=row.file_digest, content=row.manifest.content,
                                       name=row_name(row))
                    for row in rows}

    async def _index(self, found: ManifestFile, report: SyncReport) -> bool:
        """Point the file's name at its manifest; False (and why) when a blob is missing."""
        manifest = found.manifest
        descriptors = [manifest.config, *manifest.layers]
        try:
            stats = await asyncio.to_thread(self._stat_blobs, descriptors)
        except ValueError as exc:
            report.skipped[str(found.path)] = str(exc)
            log.warning("manifest_not_indexed", path=str(found.path), reason=str(exc))
            return False
        facts = await self._facts(manifest.layers)
        modified = datetime.fromtimestamp(found.mtime, UTC)
        async with self.store.sessions.begin() as session:
            await queries.insert_blobs(session, descriptors, stats)
            await queries.insert_manifest(session, found.digest, manifest, found.content)
            await queries.insert_facts(session, facts)
            _row, old = await queries.upsert_model(session, found.name, found.digest,
                                                   file_digest=found.digest, modified_at=modified)
            if old not in (None, found.digest):
                await release_manifest(session, old)  # rows only; files are the prune's
        log.info("manifest_indexed", model=found.name.display, digest=found.digest)
        return True

    def _stat_blobs(self, descriptors: Iterable[Descriptor]) -> dict[str, tuple[int, bool]]:
        """digest -> (mtime_ns, False): trusted by size now, hashed in the background."""
        stats: dict[str, tuple[int, bool]] = {}
        for descriptor in descriptors:
            try:
                stat = os.stat(self.store.blobs.path(descriptor.digest))
            except FileNotFoundError:
                raise ValueError(f"blob {descriptor.digest} is missing") from None
            if stat.st_size != descriptor.size:
                raise ValueError(f"blob {descriptor.digest} is {stat.st_size} bytes, the "
                                 f"manifest says {descriptor.size}")
            stats[descriptor.digest] = (stat.st_mtime_ns, False)
        return stats

    async def _facts(self, layers: Iterable[Descriptor]) -> dict[str, GGUFInfo]:
        facts: dict[str, GGUFInfo] = {}
        for layer in layers:
            if layer.media_type != MODEL_MEDIA_TYPE or layer.digest in facts:
                continue
            async with self.store.sessions() as session:
                if await session.get(tables.GGUFFacts, layer.digest) is not None:
                    continue
            try:
                facts[layer.digest] = await asyncio.to_thread(
                    read_gguf_info, self.store.blobs.path(layer.digest))
            except (ValueError, OSError) as exc:
                log.warning("model_layer_not_gguf", digest=layer.digest, error=str(exc))
        return facts

    async def _set_file_digest(self, key: str, digest: str) -> None:
        async with self.store.sessions.begin() as session:
            row = await session.scalar(select(tables.Model).where(tables.Model.name_key == key))
            if row is not None:
                row.file_digest = digest

    async def _drop(self, key: str) -> None:
        async with self.store.sessions.begin() as session:
            row = await session.scalar(select(tables.Model).where(tables.Model.name_key == key))
            if row is None:
                return
            digest = row.manifest_digest
            await session.delete(row)
            await session.flush()
            await release_manifest(session, digest)  # rows only; files are the prune's
        log.info("model_file_removed", name_key=key)
