"""``PushModel``: the push sequence and its progress lines, as Ollama's ``PushModel``.

    retrieving manifest → pushing <12 hex> (per layer, then the config) → pushing manifest
    → success

The manifest is sent as the exact local bytes (Ollama's legacy path re-marshals it and drops the
trailing newline, so its registry digest differs from the local model id; sending the bytes
keeps the id across a push and a pull, as Ollama's newer x/transfer path also does).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog

from registry.manifests import Manifest
from registry.store import ModelStore
from registry.transfer.http import RegistrySession, raise_for_status
from registry.transfer.pull import blob_status, unique_blobs
from registry.transfer.remote import TransferOptions
from registry.transfer.upload import BlobUpload
from services.errors import ModelNotFoundError
from services.pb.corral.registry.v1 import registry_pb2 as pb

log = structlog.get_logger()


async def push_model(store: ModelStore, session: RegistrySession, local_name: str,
                     options: TransferOptions) -> AsyncIterator[pb.Progress]:
    """Push the local model ``local_name`` to ``session.ref``, yielding progress lines."""
    ref = session.ref
    yield pb.Progress(status="retrieving manifest")
    try:
        content = await store.manifest_bytes(local_name)
    except ModelNotFoundError:
        yield pb.Progress(status="couldn't retrieve manifest")
        raise
    manifest = Manifest.parse(content)
    log.info("push_started", model=ref.name.display, registry=ref.base)
    transferred = 0
    for descriptor in unique_blobs(manifest):
        upload = BlobUpload(session, descriptor, store.blobs.path(descriptor.digest), options)
        status = blob_status("pushing", descriptor.digest)
        if await upload.exists():
            yield pb.Progress(status=status, digest=descriptor.digest, total=descriptor.size,
                              completed=descriptor.size)
            continue
        async for completed in _follow(upload, options.progress_interval_s):
            yield pb.Progress(status=status, digest=descriptor.digest, total=descriptor.size,
                              completed=completed)
        transferred += descriptor.size
    yield pb.Progress(status="pushing manifest")
    async with session.request("PUT", ref.manifest_url(), body=content,
                               headers={"Content-Type": manifest.media_type}) as resp:
        await raise_for_status(resp, "push model manifest")
    log.info("push_finished", model=ref.name.display, transferred=transferred)
    yield pb.Progress(status="success", transferred=transferred)


async def _follow(upload: BlobUpload, interval: float) -> AsyncIterator[int]:
    """Run the upload, yielding its byte count whenever it changes (at most every interval)."""
    task = asyncio.create_task(upload.run())
    try:
        last = None
        while True:
            finished = task.done()
            if upload.completed != last:
                last = upload.completed
                yield last
            if finished:
                task.result()
                return
            await asyncio.wait([task], timeout=interval)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
