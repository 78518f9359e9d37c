"""The registry's SQL: finding and writing model rows, manifests, blobs and GGUF facts.

Plain functions over an ``AsyncSession``; ``ModelStore`` owns the transactions and calls these
inside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from registry import tables
from registry.gguf_info import GGUFInfo, KvShape
from registry.manifests import MODEL_MEDIA_TYPE, Descriptor, Manifest
from services.errors import ModelNotFoundError
from services.names import ModelName, parse_name

_KV_PREFIX = "kv_"  # the gguf_info columns of GGUFInfo.kv_shape's fields
_SHAPE_FIELDS = tuple(KvShape.__dataclass_fields__)
_INFO_FIELDS = tuple(name for name in GGUFInfo.__dataclass_fields__ if name != "kv_shape")


async def find_model(session: AsyncSession, text: str) -> tables.Model:
    """The row named ``text``; ``InvalidModelNameError`` / ``ModelNotFoundError`` otherwise."""
    name = parse_name(text)
    row = await session.scalar(select(tables.Model).where(tables.Model.name_key == name.key))
    if row is None:
        raise ModelNotFoundError(f"model '{text}' not found")
    return row


def model_layer_digests(rows: Iterable[tables.Model]) -> list[str]:
    return [layer.blob_digest for row in rows for layer in row.manifest.layers
            if layer.media_type == MODEL_MEDIA_TYPE]


async def facts_by_blob(session: AsyncSession, digests: list[str]) -> dict[str, GGUFInfo]:
    if not digests:
        return {}
    rows = await session.scalars(
        select(tables.GGUFFacts).where(tables.GGUFFacts.blob_digest.in_(digests)))
    return {row.blob_digest: info_from_row(row) for row in rows}


def info_from_row(row: tables.GGUFFacts) -> GGUFInfo:
    shape = None
    if row.kv_block_count is not None:
        shape = KvShape(**{name: getattr(row, _KV_PREFIX + name) for name in _SHAPE_FIELDS})
    return GGUFInfo(kv_shape=shape, **{name: getattr(row, name) for name in _INFO_FIELDS})


def facts_row(digest: str, info: GGUFInfo) -> tables.GGUFFacts:
    """The ``gguf_info`` row of ``info`` (its K/V shape columns NULL when unknown)."""
    return tables.GGUFFacts(blob_digest=digest, **_shape_columns(info.kv_shape),
                            **{name: getattr(info, name) for name in _INFO_FIELDS})


async def set_kv_shape(session: AsyncSession, digest: str, shape: KvShape | None) -> None:
    """Store the K/V cache shape of blob ``digest``'s facts (a row that is gone stays gone)."""
    await session.execute(update(tables.GGUFFacts).where(tables.GGUFFacts.blob_digest == digest)
                          .values(**_shape_columns(shape)))


def _shape_columns(shape: KvShape | None) -> dict[str, int | None]:
    return {_KV_PREFIX + name: getattr(shape, name) if shape else None for name in _SHAPE_FIELDS}


async def insert_blobs(session: AsyncSession, descriptors: Iterable[Descriptor],
                       stats: Mapping[str, tuple[int, bool]]) -> None:
    """Rows for the blobs of a manifest; ``stats`` maps digest -> (file mtime_ns, fresh).

    A fresh blob (hashed as this process wrote it) is recorded as verified, replacing any
    earlier state (a re-download of a quarantined blob); any other blob keeps an existing row,
    or gets one marked unverified (the background verifier hashes it).
    """
    now = tables.utcnow()
    values = {d.digest: {"digest": d.digest, "size": d.size, "created_at": now,
                         "mtime_ns": stats[d.digest][0],
                         "verified_at": now if stats[d.digest][1] else None}
              for d in descriptors}
    # ON CONFLICT DO NOTHING exists in both dialects, behind dialect-specific constructs.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(dialect.insert(tables.Blob).values(list(values.values()))
                          .on_conflict_do_nothing())
    for digest, (mtime_ns, fresh) in stats.items():
        if fresh:
            await session.execute(update(tables.Blob).where(tables.Blob.digest == digest).values(
                verified_at=now, mtime_ns=mtime_ns, corrupt_digest=None))


async def insert_manifest(session: AsyncSession, digest: str, manifest: Manifest,
                           content: bytes) -> None:
    if await session.get(tables.Manifest, digest) is not None:
        return
    session.add(tables.Manifest(
        digest=digest, media_type=manifest.media_type, content=content,
        config_digest=manifest.config.digest,
        layers=[tables.Layer(position=i, blob_digest=layer.digest, media_type=layer.media_type,
                             size=layer.size) for i, layer in enumerate(manifest.layers)]))


async def insert_facts(session: AsyncSession, facts: Mapping[str, GGUFInfo]) -> None:
    for digest, info in facts.items():
        await session.merge(facts_row(digest, info))


async def find_row(session: AsyncSession, name: ModelName) -> tables.Model | None:
    """The row of ``name`` (any casing), if any."""
    return await session.scalar(select(tables.Model).where(tables.Model.name_key == name.key))


async def upsert_model(session: AsyncSession, name: ModelName, digest: str, *,
                       file_digest: str | None, modified_at: datetime | None = None
                       ) -> tuple[tables.Model, str | None]:
    """Point ``name`` at ``digest``; return the row and the manifest it pointed at before.

    ``file_digest`` is what the name's manifest file now holds; ``modified_at`` defaults to now.
    """
    row = await find_row(session, name)
    now = tables.utcnow()
    old = None
    if row is None:
        row = tables.Model(host=name.host, namespace=name.namespace, model=name.model,
                           tag=name.tag, name_key=name.key, manifest_digest=digest,
                           created_at=now, modified_at=modified_at or now)
        session.add(row)
    else:
        old = row.manifest_digest
        row.manifest_digest, row.modified_at = digest, modified_at or now
    row.file_digest = file_digest
    await session.flush()
    return row, old
