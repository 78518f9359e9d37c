"""Relaying a blob from the registry's ``ReadBlob`` stream on ``/v2/`` (a gateway that shares no
disk with the registry). A whole-blob GET is hashed as it streams and the last chunk is held
back until the digest checks out, as ``gateway.blob_serving`` does for local files: on a
mismatch the connection is cut short of ``Content-Length``, never a complete wrong body.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from gateway.keys import REGISTRY
from services.pb.corral.registry.v1 import registry_pb2 as pb

_BYTES_RANGE = re.compile(r"bytes=(?:(\d+)-(\d*)|-(\d+))")

log = structlog.get_logger()


async def stream_blob(request: web.Request, digest: str, size: int,
                      headers: dict[str, str]) -> web.StreamResponse:
    """Relay the registry's stream, honouring one ``Range: bytes=…`` (206) as files do."""
    span = _byte_range(request.headers.get("Range", ""), size)
    if span == ():
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span or (0, size - 1)
    response = web.StreamResponse(status=206 if span else 200, headers={
        **headers, "Accept-Ranges": "bytes",
        **({"Content-Range": f"bytes {start}-{end}/{size}"} if span else {})})
    response.content_length = end - start + 1
    await response.prepare(request)
    if request.method != "GET" or end < start:
        await response.write_eof()
        return response
    chunks = request.config_dict[REGISTRY].read_blob(digest, offset=start, length=end - start + 1)
    if span:  # a part cannot be checked by itself; the registry verifies its files
        async for message in chunks:
            await response.write(message.chunk)
    elif not await _relay_verified(response, chunks, digest):
        if request.transport is not None:
            request.transport.close()  # short of Content-Length: the client cannot mistake it
        return response
    await response.write_eof()
    return response


async def _relay_verified(response: web.StreamResponse,
                          chunks: AsyncIterator[pb.ReadBlobResponse], digest: str) -> bool:
    """Write every chunk but the last, then the last only if the whole hashes to ``digest``."""
    hasher, held = hashlib.sha256(), b""
    async for message in chunks:
        hasher.update(message.chunk)
        if held:
            await response.write(held)
        held = message.chunk
    if "sha256:" + hasher.hexdigest() != digest:
        log.error("blob_corrupt_relay_aborted", digest=digest)
        return False
    await response.write(held)
    return True


def _byte_range(header: str, size: int) -> tuple[int, int] | tuple[()] | None:
    """``(first, last)`` of one ``bytes=`` range; ``()`` when unsatisfiable; None for all."""
    match = _BYTES_RANGE.fullmatch(header.strip())
    if match is None or size == 0:
        return None
    if match.group(3) is not None:  # bytes=-N: the last N bytes
        start, end = max(size - int(match.group(3)), 0), size - 1
    else:
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    return (start, end) if start <= end else ()
