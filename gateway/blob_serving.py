"""Serving a stored blob on ``/v2/`` without ever passing off changed bytes under its digest.

A whole-blob GET hashes the bytes as they stream (they are read anyway) and holds the last
chunk back until the digest checks out; on a mismatch the connection is cut short of
``Content-Length``, so the client sees a truncated body, never a complete wrong one. A ranged
GET cannot be checked by itself, so the whole file is hashed first, once per (size, mtime):
the result is remembered and redone when either changes. Reads and hashing run in threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import structlog
from aiohttp import web

from services.atomic_files import file_sha256

if TYPE_CHECKING:
    from _hashlib import HASH

CHUNK = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

# digest -> (size, mtime_ns) that hashed right
VERIFIED = web.AppKey[dict[str, tuple[int, int]]]("v2_verified_blobs")
# digest -> future of an in-flight full hash: (hex digest, (size, mtime_ns))
HASHING = web.AppKey[dict[str, asyncio.Future[tuple[str, tuple[int, int]]]]]("v2_hashing_blobs")

log = structlog.get_logger()


def init_blob_serving(app: web.Application) -> None:
    app[VERIFIED] = {}
    app[HASHING] = {}


async def serve_blob(request: web.Request, path: Path, digest: str, headers: dict[str, str],
                     corrupt: Callable[[str], web.StreamResponse]) -> web.StreamResponse:
    """Answer GET/HEAD for the blob file at ``path``; ``corrupt(message)`` builds the error
    reply when a ranged read finds the file no longer matches ``digest``."""
    try:
        f = await asyncio.to_thread(open, path, "rb")
    except FileNotFoundError:
        return corrupt(f"blob {digest} is missing from the store")
    try:
        stat = os.fstat(f.fileno())
        size = stat.st_size
        headers = {**headers, "Accept-Ranges": "bytes"}
        wanted = _range(request.headers.get("Range", ""), size)
        if isinstance(wanted, str):  # "unsatisfiable"
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if request.method == "HEAD":
            return await _head(request, headers, size)
        if wanted is None:
            return await _stream_verified(request, f, digest, size, stat.st_mtime_ns, headers)
        if not await _whole_file_sound(request.app, path, digest, (size, stat.st_mtime_ns)):
            return corrupt(f"blob {digest} is corrupt on this server")
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return await _stream_range(request, f, start, end, headers)
    finally:
        await asyncio.to_thread(f.close)


async def _head(request: web.Request, headers: dict[str, str], size: int) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    response.content_length = size
    await response.prepare(request)
    return response


async def _stream_verified(request: web.Request, f: BinaryIO, digest: str, size: int,
                           mtime_ns: int, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    response.content_length = size
    await response.prepare(request)
    hasher, held, sent = hashlib.sha256(), b"", 0
    while sent + len(held) < size:
        chunk = await asyncio.to_thread(_read_hashed, f, hasher, min(CHUNK, size - sent - len(held)))
        if not chunk:
            break  # the file shrank while we read it: the digest check below fails
        if held:
            await response.write(held)
            sent += len(held)
        held = chunk
    actual = "sha256:" + hasher.hexdigest()
    if actual != digest or sent + len(held) != size:
        log.error("blob_corrupt_serving_aborted", digest=digest, actual=actual)
        request.app[VERIFIED].pop(digest, None)
        if request.transport is not None:
            request.transport.close()  # short of Content-Length: the client cannot mistake it
        return response
    request.app[VERIFIED][digest] = (size, mtime_ns)
    await response.write(held)
    await response.write_eof()
    return response


async def _stream_range(request: web.Request, f: BinaryIO, start: int, end: int,
                        headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(status=206, headers=headers)
    response.content_length = end - start + 1
    await response.prepare(request)
    await asyncio.to_thread(f.seek, start)
    left = end - start + 1
    while left:
        chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
        if not chunk:
            break
        await response.write(chunk)
        left -= len(chunk)
    await response.write_eof()
    return response


async def _whole_file_sound(app: web.Application, path: Path, digest: str,
                            stat: tuple[int, int]) -> bool:
    if app[VERIFIED].get(digest) == stat:
        return True
    future = app[HASHING].get(digest)
    if future is None:
        future = asyncio.ensure_future(asyncio.to_thread(_hash_file, path))
        app[HASHING][digest] = future
        future.add_done_callback(lambda _f: app[HASHING].pop(digest, None))
    actual, hashed_stat = await asyncio.shield(future)
    if actual != digest:
        log.error("blob_corrupt_not_served", digest=digest, actual=actual)
        app[VERIFIED].pop(digest, None)
        return False
    app[VERIFIED][digest] = hashed_stat
    return bool(hashed_stat == stat)


def _range(header: str, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` inclusive for one satisfiable range, ``None`` for the whole blob
    (no header, or one we do not serve partially, such as several ranges)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:  # a suffix: the last N bytes
        if not last:
            return None
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


def _read_hashed(f: BinaryIO, hasher: HASH, n: int) -> bytes:
    chunk = f.read(n)
    hasher.update(chunk)
    return chunk


def _hash_file(path: Path) -> tuple[str, tuple[int, int]]:
    digest, stat = file_sha256(path)
    return digest, (stat.st_size, stat.st_mtime_ns)
