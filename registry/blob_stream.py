"""``ReadBlob``: a stored blob's bytes as a gRPC server stream, for gateways on other hosts.

Reads run in a worker thread, 1 MiB at a time (well under gRPC's 4 MiB message limit), from
an open file descriptor: a blob pruned while it streams keeps its bytes until the stream ends,
so a reader gets the whole blob or an error, never a mix.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import structlog

from registry.blobs import BlobStore
from registry.lifecycle import checked_digest
from registry.store import ModelStore
from services.context import ServicerContext
from services.errors import InvalidRequestError, ModelNotFoundError
from services.pb.corral.registry.v1 import registry_pb2 as pb

READ_CHUNK = 1 << 20

log = structlog.get_logger()


async def read_blob(blobs: BlobStore, digest: str, offset: int = 0,
                    length: int = 0) -> AsyncIterator[tuple[int, bytes]]:
    """``(blob size, chunk)`` pairs covering ``length`` bytes (0 = to the end) from ``offset``.

    Raises ``ModelNotFoundError`` when the blob is not stored and ``InvalidRequestError`` for
    a malformed digest or a range outside the blob.
    """
    digest = checked_digest(digest)
    try:
        fd = await asyncio.to_thread(os.open, blobs.path(digest), os.O_RDONLY)
    except FileNotFoundError:
        raise ModelNotFoundError(f"blob {digest} not found") from None
    try:
        size = os.fstat(fd).st_size
        if offset < 0 or length < 0 or offset > size:
            raise InvalidRequestError(f"range {offset}+{length} is outside blob {digest} ({size} bytes)")
        end = size if length == 0 else min(size, offset + length)
        if offset == end:  # an empty range still tells the reader the size
            yield size, b""
        position = offset
        while position < end:
            chunk = await asyncio.to_thread(os.pread, fd, min(READ_CHUNK, end - position), position)
            if not chunk:
                raise InvalidRequestError(f"blob {digest} shrank while it was read")
            position += len(chunk)
            yield size, chunk
    finally:
        os.close(fd)


class BlobStreamServicerMixin:
    """``ReadBlob`` over ``self._store.blobs``."""

    _store: ModelStore

    async def ReadBlob(self, request: pb.ReadBlobRequest,
                       context: ServicerContext) -> AsyncIterator[pb.ReadBlobResponse]:
        """The blob's bytes from ``offset``; the first message also carries the full size."""
        first, sent = True, 0
        async for size, chunk in read_blob(self._store.blobs, request.digest, request.offset,
                                           request.length):
            yield pb.ReadBlobResponse(chunk=chunk, size=size if first else 0)
            first, sent = False, sent + len(chunk)
        log.info("blob_served", digest=request.digest, offset=request.offset, bytes=sent)
