"""``ModelStore``: models, manifests and blobs behind one interface the servicer calls.

Files are written before rows: a crash leaves at worst an unreferenced blob (which pruning
removes), never a row that points at a missing file. Each change is one transaction. Changes
that can prune run under one write lock, held across the transaction and the file deletions,
so a blob is never unlinked while another change commits a manifest that uses it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, overload

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from registry import tables
from registry import queries
from registry.blobs import BlobStore, digest_of
from registry.gguf_info import GGUFInfo
from registry.gguf_kv import read_gguf_info
from registry.manifest_files import MANIFESTS_DIRNAME, ManifestTree
from registry.manifests import (
    ADAPTER_MEDIA_TYPE, CONFIG_MEDIA_TYPE, LICENSE_MEDIA_TYPE, MESSAGES_MEDIA_TYPE, MODEL_MEDIA_TYPE,
    PARAMS_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE, SYSTEM_MEDIA_TYPE, TEMPLATE_MEDIA_TYPES, Descriptor,
    Manifest, gguf_config,
)
from registry.records import ModelDetails, ModelRecord, ResolvedModel, details_of
from registry.refs import release_manifest
from registry.replicas import StoreLock, notify_models_changed
from services.errors import (
    CorralError, InvalidModelNameError, ModelNotFoundError, StoredBlobCorruptError,
)
from services.gocodec import go_quote
from services.names import ModelName, parse_name

log = structlog.get_logger()

ManifestCheck = Callable[[str, Manifest], Awaitable[None]]

# The record types moved to registry.records; importing them from here keeps working.
__all__ = ["ModelDetails", "ModelRecord", "ModelStore", "ResolvedModel", "row_name"]


class ModelStore:
    """The registry's model catalogue: SQLite rows over a ``BlobStore``.

    ``noprune`` is ``OLLAMA_NOPRUNE``: a name re-pointed to another manifest then keeps the old
    manifest's blobs (deleting a model always prunes, as in Ollama).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, *,
                 noprune: bool = False, manifest_files: ManifestTree | None = None) -> None:
        self._sessions = sessions
        self.blobs = blobs
        self.noprune = noprune
        # Ollama's manifest files in the same store: their blobs are in use whatever our rows say.
        self.manifest_files = manifest_files or ManifestTree(blobs.root.parent / MANIFESTS_DIRNAME)
        engine = sessions.kw.get("bind")
        self.write_lock = StoreLock(engine)
        # Resolve runs on every inference request and costs several queries and blob reads.
        # Our own writes invalidate the cache; on PostgreSQL other replicas write too, so the
        # cache stays off until registry.replicas.watch_model_changes listens for their writes.
        self._resolved_cache: dict[str, ResolvedModel] = {}
        self._generation = 0
        self._cache_enabled = engine is None or engine.dialect.name != "postgresql"
        self.replica_id = uuid.uuid4().hex

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The session factory, for modules that run their own transactions."""
        return self._sessions

    async def is_empty(self) -> bool:
        """Whether no model is registered."""
        async with self._sessions() as session:
            return not await session.scalar(select(func.count()).select_from(tables.Model))

    async def list_models(self) -> list[ModelRecord]:
        """Every model, most recently modified first."""
        async with self._sessions() as session:
            rows = (await session.scalars(
                select(tables.Model).order_by(tables.Model.modified_at.desc()))).all()
            facts = await queries.facts_by_blob(session, queries.model_layer_digests(rows))
        return [await self._record(row, facts) for row in rows]

    async def resolve(self, text: str, *, check: ManifestCheck | None = None) -> ResolvedModel:
        """The model called ``text`` (any casing, any accepted spelling).

        Raises ``InvalidModelNameError`` for a malformed name and ``ModelNotFoundError``
        (``model 'TEXT' not found``, ``TEXT`` as given) when there is no such model.
        ``check(text, manifest)`` runs before any blob is read, cached or not (integrity).
        """
        key = parse_name(text).key
        if (cached := self._resolved_cache.get(key)) is not None:
            if check is not None:
                assert cached.manifest is not None, "_resolved() always sets it"
                await check(text, cached.manifest)
            return cached
        generation = self._generation
        async with self._sessions() as session:
            row = await queries.find_model(session, text)
            facts = await queries.facts_by_blob(session, queries.model_layer_digests([row]))
        if check is not None:
            await check(text, Manifest.parse(row.manifest.content))
        resolved = await self._resolved(row, facts)
        if generation == self._generation and self._cache_enabled:  # no write meanwhile
            self._resolved_cache[key] = resolved
        return resolved

    def models_changed(self, origin: str = "") -> None:
        """Forget every cached resolve: after a write here, or (``origin`` naming the writer,
        via NOTIFY) on another replica; our own messages coming back change nothing."""
        if origin == self.replica_id:
            return
        self._generation += 1
        self._resolved_cache.clear()

    def set_cache_enabled(self, enabled: bool) -> None:
        """Turn the resolve cache on or off; either way it starts empty."""
        self._cache_enabled = enabled
        self.models_changed()

    async def manifest_bytes(self, text: str) -> bytes:
        """The stored manifest of model ``text``, byte for byte (its sha256 is the model id)."""
        async with self._sessions() as session:
            return (await queries.find_model(session, text)).manifest.content

    async def import_gguf(self, name: ModelName, source: Path) -> ModelRecord:
        """Register the GGUF file ``source`` as ``name``: weights blob, config, manifest."""
        digest, size = await self.blobs.copy_file(source)
        info = await self.gguf_info(digest)
        config_digest, config_size = await self.blobs.write_bytes(gguf_config(info))
        manifest = Manifest(config=Descriptor(CONFIG_MEDIA_TYPE, config_digest, config_size),
                            layers=(Descriptor(MODEL_MEDIA_TYPE, digest, size),))
        return await self.save_model(name, manifest.to_bytes(), {digest: info})

    async def save_model(self, name: ModelName, content: bytes,
                         facts: Mapping[str, GGUFInfo] | None = None) -> ModelRecord:
        """Point ``name`` at the manifest ``content``, kept byte for byte, in one transaction.

        The manifest's blobs must already be stored; ``facts`` are GGUF facts by blob digest.
        An existing name that differs only by case keeps its first spelling, as Ollama does.
        The manifest it replaces is pruned unless ``noprune`` (see ``replace_model``).
        Raises ``ValueError`` for bytes that are not a schema2 manifest.
        """
        record, _pruned = await self.replace_model(name, content, facts)
        return record

    async def replace_model(self, name: ModelName, content: bytes,
                            facts: Mapping[str, GGUFInfo] | None = None
                            ) -> tuple[ModelRecord, list[str]]:
        """``save_model`` that also returns the blob digests it pruned: those only the replaced
        manifest used (none with ``noprune``). Raises ``CorralError`` when a blob file is
        missing (e.g. pruned by a concurrent delete) and nothing changes then."""
        manifest = Manifest.parse(content)
        digest = digest_of(content)
        descriptors = [manifest.config, *manifest.layers]
        async with self.write_lock:
            stats = await self._file_stats(descriptors)
            async with self._sessions() as session:
                existing = await queries.find_row(session, name)
            # The file first: a crash before the commit leaves a file the next rescan indexes.
            await asyncio.to_thread(self.manifest_files.write,
                                    row_name(existing) if existing else name, content)
            async with self._sessions.begin() as session:
                await queries.insert_blobs(session, descriptors, stats)
                await queries.insert_manifest(session, digest, manifest, content)
                await queries.insert_facts(session, facts or {})
                row, old = await queries.upsert_model(session, name, digest, file_digest=digest)
                pruned = (await release_manifest(session, old)
                          if old not in (None, digest) and not self.noprune else [])
                await notify_models_changed(session, self.replica_id)
            self.models_changed()
            pruned = await self.unlink_blobs(pruned)
        log.info("model_saved", model=row_name(row).display, digest=digest, pruned=len(pruned))
        async with self._sessions() as session:
            row = await session.get_one(tables.Model, row.id)
            facts_now = await queries.facts_by_blob(session, queries.model_layer_digests([row]))
        return await self._record(row, facts_now), pruned

    async def copy_model(self, source: str, destination: str) -> ModelRecord:
        """Point ``destination`` at ``source``'s manifest (blobs shared), as ``ollama cp``.

        Errors use ``/api/copy``'s wording: ``source "X" is invalid``, ``destination "X" is
        invalid``, ``model "X" not found``. A replaced destination is pruned unless ``noprune``.
        """
        src = _parse_or(source, f"source {go_quote(source)} is invalid")
        dst = _parse_or(destination, f"destination {go_quote(destination)} is invalid")
        async with self._sessions() as session:
            row = await session.scalar(select(tables.Model).where(tables.Model.name_key == src.key))
            if row is None:
                raise ModelNotFoundError(f"model {go_quote(source)} not found")
            content = row.manifest.content
        return await self.save_model(dst, content)

    async def delete_model(self, text: str) -> list[str]:
        """Remove the name ``text`` and every blob no other manifest uses; return those digests.

        Always prunes (``OLLAMA_NOPRUNE`` does not apply to deletes, as in Ollama). Errors use
        ``/api/delete``'s wording: ``name "X" is invalid``, ``model 'X' not found``.
        """
        name = _parse_or(text, f"name {go_quote(text)} is invalid")
        async with self.write_lock:
            async with self._sessions() as session:
                if await queries.find_row(session, name) is None:
                    raise ModelNotFoundError(f"model '{text}' not found")
            # The file first: a crash before the commit leaves a row whose file is gone, which
            # the next rescan drops; the other order could bring a deleted model back.
            await asyncio.to_thread(self.manifest_files.remove, name)
            async with self._sessions.begin() as session:
                row = await queries.find_row(session, name)
                if row is None:
                    raise ModelNotFoundError(f"model '{text}' not found")
                digest = row.manifest_digest
                await session.delete(row)
                await session.flush()
                pruned = await release_manifest(session, digest)
                await notify_models_changed(session, self.replica_id)
            self.models_changed()
            pruned = await self.unlink_blobs(pruned)
        log.info("model_deleted", model=name.display, digest=digest, pruned=len(pruned))
        return pruned

    async def unlink_blobs(self, digests: Iterable[str]) -> list[str]:
        """Delete blob files whose rows are already gone; return the digests deleted.

        The last check before a file goes: a blob some manifest file on disk still names (an
        Ollama model sharing the store) is kept, and nothing is deleted while any manifest file
        cannot be read, since it might name any blob. A missing file is not an error.
        """
        digests = sorted(set(digests))
        if not digests:
            return []
        scan = await asyncio.to_thread(self.manifest_files.scan)
        if scan.errors:
            log.warning("blob_removal_skipped", reason="unreadable manifest files",
                        manifests=[str(path) for path, _ in scan.errors], blobs=digests)
            return []
        in_use = scan.referenced()
        if kept := [digest for digest in digests if digest in in_use]:
            log.info("blob_kept_for_manifest_file", blobs=kept)
        doomed = [digest for digest in digests if digest not in in_use]
        if doomed:
            log.info("blobs_removing", blobs=doomed)
        for digest in doomed:
            await asyncio.to_thread(self.blobs.path(digest).unlink, missing_ok=True)
            log.info("blob_pruned", digest=digest)
        return doomed

    async def gguf_info(self, digest: str) -> GGUFInfo:
        """Facts for a stored GGUF blob: from the table when known, else read from the file.

        Raises ``ValueError`` when the blob is not a GGUF file."""
        async with self._sessions() as session:
            row = await session.get(tables.GGUFFacts, digest)
        if row is not None:
            return await self._with_kv_shape(digest, queries.info_from_row(row))
        return await asyncio.to_thread(read_gguf_info, self.blobs.path(digest))

    @overload
    async def _with_kv_shape(self, digest: str, info: GGUFInfo) -> GGUFInfo: ...
    @overload
    async def _with_kv_shape(self, digest: str, info: GGUFInfo | None) -> GGUFInfo | None: ...

    async def _with_kv_shape(self, digest: str, info: GGUFInfo | None) -> GGUFInfo | None:
        """``info`` with its K/V cache shape. Facts recorded before the registry kept it
        (schema revision 0004) get it now, read from the blob's header and stored, so each
        blob is read once after the upgrade; the migration reads no files (see it). Facts
        that never existed (a weights layer that was not GGUF) stay None."""
        if info is None or info.kv_shape is not None:
            return info
        try:
            shape = (await asyncio.to_thread(read_gguf_info, self.blobs.path(digest))).kv_shape
        except (OSError, ValueError) as exc:
            log.warning("kv_shape_unreadable", digest=digest, error=str(exc))
            return info
        async with self._sessions.begin() as session:
            await queries.set_kv_shape(session, digest, shape)
        log.info("kv_shape_backfilled", digest=digest)
        return dataclasses.replace(info, kv_shape=shape)

    async def _file_stats(self, descriptors: Iterable[Descriptor]) -> dict[str, tuple[int, bool]]:
        """Digest -> (mtime_ns, hashed by this process as it wrote it) of every blob file;
        ``CorralError`` when one is missing (e.g. pruned by a concurrent delete)."""
        def stat_all() -> dict[str, tuple[int, bool]]:
            found: dict[str, tuple[int, bool]] = {}
            for descriptor in descriptors:
                if descriptor.digest in found:
                    continue
                try:
                    mtime_ns = self.blobs.path(descriptor.digest).stat().st_mtime_ns
                except FileNotFoundError:
                    raise CorralError(
                        f"blob {descriptor.digest} is missing from the store") from None
                found[descriptor.digest] = (mtime_ns,
                                            self.blobs.take_fresh(descriptor.digest, mtime_ns))
            return found
        return await asyncio.to_thread(stat_all)

    async def _record(self, row: tables.Model, facts: Mapping[str, GGUFInfo]) -> ModelRecord:
        manifest = Manifest.parse(row.manifest.content)
        config = await self._config(manifest)
        model_layer = manifest.layer(MODEL_MEDIA_TYPE)
        info = facts.get(model_layer.digest) if model_layer else None
        return ModelRecord(name=row_name(row), digest=row.manifest_digest.removeprefix("sha256:"),
                           size=manifest.size, modified_at=row.modified_at,
                           details=details_of(config, info))

    async def _resolved(self, row: tables.Model, facts: Mapping[str, GGUFInfo]) -> ResolvedModel:
        record = await self._record(row, facts)
        manifest = Manifest.parse(row.manifest.content)
        config = await self._config(manifest)
        model_layer = manifest.layer(MODEL_MEDIA_TYPE)
        info = await self._with_kv_shape(model_layer.digest, facts.get(model_layer.digest)
                                         ) if model_layer else None
        template = next((layer for t in TEMPLATE_MEDIA_TYPES if (layer := manifest.layer(t))), None)
        return ResolvedModel(
            record=record,
            model_path=self.blobs.path(model_layer.digest).resolve() if model_layer else Path(),
            template=await self._text(template),
            chat_template=info.chat_template if info else "",
            system=await self._text(manifest.layer(SYSTEM_MEDIA_TYPE)),
            parameters=await self._json(manifest.layer(PARAMS_MEDIA_TYPE), {}),
            messages=await self._json(manifest.layer(MESSAGES_MEDIA_TYPE), []),
            bos_token=info.bos_token if info else "",
            eos_token=info.eos_token if info else "",
            manifest=manifest,
            licenses=[await self._text(layer) for layer in manifest.layers
                      if layer.media_type == LICENSE_MEDIA_TYPE],
            adapter_paths=[self.blobs.path(layer.digest).resolve() for layer in manifest.layers
                           if layer.media_type == ADAPTER_MEDIA_TYPE],
            renderer=_config_text(config, "renderer"), parser=_config_text(config, "parser"),
            projector_paths=[self.blobs.path(layer.digest).resolve()
                             for layer in manifest.layers
                             if layer.media_type == PROJECTOR_MEDIA_TYPE],
            kv_shape=info.kv_shape if info else None,
        )

    async def _config(self, manifest: Manifest) -> dict[str, Any]:
        try:
            config = json.loads(await self.blobs.read(manifest.config.digest))
        except (OSError, ValueError) as exc:
            log.warning("model_config_unreadable", digest=manifest.config.digest, error=str(exc))
            return {}
        return config if isinstance(config, dict) else {}

    async def _text(self, layer: Descriptor | None) -> str:
        if layer is None:
            return ""
        return (await self._read(layer.digest)).decode("utf-8", errors="replace")

    async def _json(self, layer: Descriptor | None, default: Any) -> Any:
        if layer is None:
            return default
        try:
            value = json.loads(await self._read(layer.digest))
        except ValueError:
            raise StoredBlobCorruptError(f"blob {layer.digest} does not hold JSON; run "
                                         f"`corral verify` to check the store") from None
        return value if isinstance(value, type(default)) else default

    async def _read(self, digest: str) -> bytes:
        try:
            return await self.blobs.read(digest)
        except FileNotFoundError:
            raise StoredBlobCorruptError(f"blob {digest} is missing from the store; pull the "
                                         f"model again to restore it") from None


def _config_text(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    return value if isinstance(value, str) else ""


def row_name(row: tables.Model) -> ModelName:
    """The stored spelling of a model row's name."""
    return ModelName(host=row.host, namespace=row.namespace, model=row.model, tag=row.tag)


def _parse_or(text: str, message: str) -> ModelName:
    """``parse_name(text)``, raising ``InvalidModelNameError(message)`` for a bad name."""
    try:
        return parse_name(text)
    except InvalidModelNameError:
        raise InvalidModelNameError(message) from None
