"""Which blobs are still needed: reference queries and manifest release, inside a transaction.

A blob is referenced while a manifest lists it as a layer or as its config; a manifest lives
while a model row points at it. These helpers only change rows; the caller deletes the files
after the transaction commits (a crash in between leaves unreferenced files, never a row that
points at a missing file), and holds the store's write lock across both.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from registry import tables


async def referenced_blobs(session: AsyncSession) -> set[str]:
    """Every digest some stored manifest uses, as a layer or as its config."""
    query = union(select(tables.Layer.blob_digest), select(tables.Manifest.config_digest))
    return set((await session.scalars(query)).all())


async def model_count(session: AsyncSession, manifest_digest: str) -> int:
    """How many names point at ``manifest_digest``."""
    return await session.scalar(select(func.count()).select_from(tables.Model).where(
        tables.Model.manifest_digest == manifest_digest)) or 0


async def release_manifest(session: AsyncSession, digest: str) -> list[str]:
    """Drop manifest ``digest`` when no name points at it any more, with the rows of every blob
    it used that nothing else uses; return those blob digests (their files are the caller's)."""
    if await model_count(session, digest):
        return []
    manifest = await session.get(tables.Manifest, digest)
    if manifest is None:
        return []
    candidates = {manifest.config_digest} | {layer.blob_digest for layer in manifest.layers}
    await session.delete(manifest)
    await session.flush()
    orphans = sorted(candidates - await _still_used(session, candidates))
    await forget_blobs(session, orphans)
    return orphans


async def drop_orphan_manifests(session: AsyncSession) -> int:
    """Delete manifest rows no name points at (left by older versions or interrupted work)."""
    used = select(tables.Model.manifest_digest)
    orphans = (await session.scalars(
        select(tables.Manifest).where(tables.Manifest.digest.not_in(used)))).all()
    for manifest in orphans:
        await session.delete(manifest)
    await session.flush()
    return len(orphans)


async def forget_blobs(session: AsyncSession, digests: Iterable[str]) -> None:
    """Delete the rows (blob and GGUF facts) of blobs whose files are about to go."""
    digests = list(digests)
    if not digests:
        return
    await session.execute(delete(tables.GGUFFacts).where(tables.GGUFFacts.blob_digest.in_(digests)))
    await session.execute(delete(tables.Blob).where(tables.Blob.digest.in_(digests)))


async def _still_used(session: AsyncSession, digests: set[str]) -> set[str]:
    layers = select(tables.Layer.blob_digest).where(tables.Layer.blob_digest.in_(digests))
    configs = select(tables.Manifest.config_digest).where(
        tables.Manifest.config_digest.in_(digests))
    return set((await session.scalars(union(layers, configs))).all())
