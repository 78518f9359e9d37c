"""The blob store: atomic, verified, digest-named writes and nothing else on disk."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from registry.blobs import BlobStore, canonical_digest
from services.atomic_files import TEMP_PREFIX
from services.errors import BlobCorruptError, InvalidRequestError

DATA = b"hello, blobs\n"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def files(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir())


async def test_write_bytes_names_file_by_digest(store: BlobStore) -> None:
    assert await store.write_bytes(DATA) == (DIGEST, len(DATA))
    path = store.path(DIGEST)
    assert path.name == "sha256-" + DIGEST[7:] and path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert files(store) == [path.name]
    assert await store.size(DIGEST.replace(":", "-")) == len(DATA)


async def test_write_is_idempotent(store: BlobStore) -> None:
    await store.write_bytes(DATA)
    await store.write_bytes(DATA)
    assert await store.write_stream(DIGEST, chunks(DATA[:3], DATA[3:])) == len(DATA)
    assert files(store) == [store.path(DIGEST).name]


async def test_stream_write_verifies_digest(store: BlobStore) -> None:
    assert await store.write_stream(DIGEST, chunks(DATA[:5], DATA[5:])) == len(DATA)
    assert store.path(DIGEST).read_bytes() == DATA


async def test_stream_digest_mismatch_leaves_nothing(store: BlobStore) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(BlobCorruptError, match="digest mismatch"):
        await store.write_stream(wrong, chunks(DATA))
    assert files(store) == []
    assert await store.size(wrong) is None


async def test_copy_file_digest_mismatch_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    with pytest.raises(BlobCorruptError):
        await store.copy_file(source, expected="sha256:" + "1" * 64)
    assert files(store) == []
    assert await store.copy_file(source) == (DIGEST, len(DATA))
    assert files(store) == [store.path(DIGEST).name]


@pytest.mark.parametrize("digest", [
    "../../etc/passwd", "sha256:../../etc/passwd", "sha256-" + "0" * 63 + "/",
    "sha256:" + "0" * 64 + "/../x", "sha256-" + "A" * 64, "sha256:" + "0" * 63,
    "sha512:" + "0" * 64, "sha256/" + "0" * 64, "", "sha256:" + "0" * 64 + "\n",
])
async def test_traversal_shaped_digests_rejected(store: BlobStore, digest: str) -> None:
    with pytest.raises(InvalidRequestError):
        store.path(digest)
    with pytest.raises(InvalidRequestError):
        await store.write_stream(digest, chunks(DATA))
    with pytest.raises(InvalidRequestError):
        canonical_digest(digest)


def test_stale_temp_files_removed(store: BlobStore) -> None:
    store.root.mkdir()
    (store.root / f"{TEMP_PREFIX}deadbeef").write_bytes(b"partial")
    (store.root / f"{TEMP_PREFIX}cafe").write_bytes(b"")
    keep = store.path(DIGEST)
    keep.write_bytes(DATA)
    assert store.remove_stale_temp_files() == 2
    assert files(store) == [keep.name]


def test_stale_cleanup_tolerates_missing_dir(store: BlobStore) -> None:
    assert store.remove_stale_temp_files() == 0
