"""``read_blob``: the bytes behind ``ReadBlob``, by range, from an open descriptor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.blob_stream import READ_CHUNK, read_blob
from registry.blobs import BlobStore
from services.errors import InvalidRequestError, ModelNotFoundError
from tests.registry.model_helpers import chunks_of, sha256_digest


async def stored(tmp_path: Path, data: bytes) -> tuple[BlobStore, str]:
    blobs = BlobStore(tmp_path / "blobs")
    digest = sha256_digest(data)
    await blobs.write_stream(digest, chunks_of(data))
    return blobs, digest


async def collect(*args, **kwargs) -> tuple[set[int], bytes, list[int]]:
    sizes, parts = set(), []
    async for size, chunk in read_blob(*args, **kwargs):
        sizes.add(size)
        parts.append(chunk)
    return sizes, b"".join(parts), [len(p) for p in parts]


async def test_whole_blobs_and_ranges(tmp_path: Path) -> None:
    data = os.urandom(2 * READ_CHUNK + 7)
    blobs, digest = await stored(tmp_path, data)
    sizes, got, lengths = await collect(blobs, digest)
    assert (sizes, got) == ({len(data)}, data) and max(lengths) == READ_CHUNK
    assert (await collect(blobs, digest, 5, 10))[1] == data[5:15]
    assert (await collect(blobs, digest, READ_CHUNK - 1, 0))[1] == data[READ_CHUNK - 1:]
    assert (await collect(blobs, digest, len(data) - 3, 100))[1] == data[-3:]  # clipped
    assert await collect(blobs, digest, len(data), 0) == ({len(data)}, b"", [0])  # size only


async def test_bad_requests(tmp_path: Path) -> None:
    blobs, digest = await stored(tmp_path, b"hello")
    with pytest.raises(InvalidRequestError, match="outside"):
        await collect(blobs, digest, 6, 0)
    with pytest.raises(InvalidRequestError, match="invalid digest format"):
        await collect(blobs, "sha256:../../etc/passwd")
    with pytest.raises(ModelNotFoundError, match="not found"):
        await collect(blobs, "sha256:" + "0" * 64)


async def test_a_blob_pruned_mid_stream_still_streams_whole(tmp_path: Path) -> None:
    data = os.urandom(3 * READ_CHUNK)
    blobs, digest = await stored(tmp_path, data)
    received = []
    async for _size, chunk in read_blob(blobs, digest):
        received.append(chunk)
        blobs.path(digest).unlink(missing_ok=True)  # a concurrent delete prunes it
    assert b"".join(received) == data
