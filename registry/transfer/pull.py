"""``PullModel``: the pull sequence and its progress lines, as Ollama's ``PullModel``.

    pulling manifest → pulling <12 hex> (per layer, then the config) → verifying sha256 digest
    → writing manifest → success

The manifest is fetched with the schema2 ``Accept`` header and kept byte for byte. Every missing
blob's space is reserved before the first byte is fetched; blobs download one after another
(their parts in parallel), each verified as it enters the store. The model row is written last,
in one transaction, so a failed pull never leaves a model that points at missing blobs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import structlog

from registry.blobs import BlobStore
from registry.gguf_info import GGUFInfo
from registry.manifests import MODEL_MEDIA_TYPE, Descriptor, Manifest
from registry.store import ModelStore
from registry.transfer.download import DownloadManager
from registry.transfer.http import RegistrySession, raise_for_status
from registry.transfer.remote import MANIFEST_ACCEPT, RemoteRef
from services.errors import DiskFullError, TransferError, UpstreamError
from services.pb.corral.registry.v1 import registry_pb2 as pb

MAX_MANIFEST_BYTES = 4 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

log = structlog.get_logger()


def blob_status(verb: str, digest: str) -> str:
    """``pulling 6a0746a1ec1a``: the verb and the first 12 hex digits of the digest."""
    return f"{verb} {digest.removeprefix('sha256:')[:12]}"


def unique_blobs(manifest: Manifest) -> list[Descriptor]:
    """Layers in manifest order, then the config; each digest once."""
    seen: dict[str, Descriptor] = {}
    for descriptor in (*manifest.layers, manifest.config):
        seen.setdefault(descriptor.digest, descriptor)
    return list(seen.values())


async def fetch_manifest(session: RegistrySession, ref: RemoteRef) -> tuple[bytes, Manifest]:
    """The manifest's exact bytes and their parse; Ollama's error wording on failure."""
    async with session.request("GET", ref.manifest_url(), headers={"Accept": MANIFEST_ACCEPT}) as resp:
        if resp.status == 404:
            raise TransferError("pull model manifest: file does not exist")
        await raise_for_status(resp, "pull model manifest")
        try:
            content = await resp.content.read(MAX_MANIFEST_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"pull model manifest: {exc}") from exc
    if len(content) > MAX_MANIFEST_BYTES:
        raise UpstreamError("pull model manifest: manifest too large")
    return content, parse_remote_manifest(content)


def parse_remote_manifest(content: bytes) -> Manifest:
    """A schema2 (or OCI image) manifest; ``TransferError`` for indexes and anything else."""
    try:
        raw = json.loads(content)
        manifest = Manifest.parse(content)
    except ValueError as exc:
        raise UpstreamError(f"pull model manifest: {exc}") from exc
    if raw.get("schemaVersion") != 2 or manifest.media_type not in (MANIFEST_ACCEPT, OCI_MANIFEST):
        raise TransferError(f"pull model manifest: unsupported manifest type "
                            f"{raw.get('mediaType')!r}")
    return manifest


async def pull_model(store: ModelStore, downloads: DownloadManager, session: RegistrySession
                     ) -> AsyncIterator[pb.Progress]:
    """Pull ``session.ref`` into ``store``, yielding Ollama's progress lines."""
    ref = session.ref
    yield pb.Progress(status="pulling manifest")
    content, manifest = await fetch_manifest(session, ref)
    blobs = unique_blobs(manifest)
    missing = [d for d in blobs if await store.blobs.size(d.digest) is None]
    log.info("pull_started", model=ref.name.display, blobs=len(blobs), missing=len(missing),
             bytes_missing=sum(d.size for d in missing))
    created = set(await downloads.reserve(missing))
    try:
        for descriptor in blobs:
            status = blob_status("pulling", descriptor.digest)
            if descriptor not in missing:
                yield pb.Progress(status=status, digest=descriptor.digest, total=descriptor.size,
                                  completed=descriptor.size)
                continue
            async for completed in downloads.attach(descriptor, session).follow():
                yield pb.Progress(status=status, digest=descriptor.digest, total=descriptor.size,
                                  completed=completed)
    except BaseException as exc:  # failed or abandoned: give back space reserved for nothing
        await downloads.release([d for d in missing if d.digest in created],
                                everything=isinstance(exc, DiskFullError))
        raise
    yield pb.Progress(status="verifying sha256 digest")
    await _check_stored(store.blobs, blobs)
    yield pb.Progress(status="writing manifest")
    _record, pruned = await store.replace_model(ref.name, content, await gguf_facts(store, manifest))
    if pruned:  # the blobs only the name's previous manifest used (unless OLLAMA_NOPRUNE)
        yield pb.Progress(status="removing unused layers")
    log.info("pull_finished", model=ref.name.display, pruned=len(pruned))
    yield pb.Progress(status="success", transferred=sum(d.size for d in missing))


async def _check_stored(blobs: BlobStore, descriptors: list[Descriptor]) -> None:
    """Every blob is in the store with the size the manifest declares."""
    for descriptor in descriptors:
        size = await blobs.size(descriptor.digest)
        if size != descriptor.size:
            raise TransferError(f"blob {descriptor.digest} is {size} bytes, the manifest says "
                                f"{descriptor.size}")


async def gguf_facts(store: ModelStore, manifest: Manifest) -> dict[str, GGUFInfo]:
    """GGUF facts of the model layers (a layer that is not GGUF is stored without facts)."""
    facts = {}
    for layer in manifest.layers:
        if layer.media_type == MODEL_MEDIA_TYPE:
            try:
                facts[layer.digest] = await store.gguf_info(layer.digest)
            except (ValueError, OSError) as exc:
                log.warning("model_layer_not_gguf", digest=layer.digest, error=str(exc))
    return facts
