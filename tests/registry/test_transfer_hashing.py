"""RunningHash: a blob's sha256 while its parts are written out of order."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from registry.blobs import BlobStore
from registry.transfer.hashing import RunningHash
from services.errors import BlobCorruptError
from tests.registry.fake_oci import digest
from tests.registry.transfer_helpers import WEIGHTS, blob_files, pull

DATA = random.Random(7).randbytes(200_000)


def writer(path: Path) -> int:
    path.write_bytes(b"\0" * len(DATA))
    return os.open(path, os.O_RDWR)


def write(fd: int, running: RunningHash, offset: int, end: int) -> None:
    os.pwrite(fd, DATA[offset:end], offset)
    running.wrote(fd, offset, DATA[offset:end])


def test_in_order_writes_are_hashed_from_memory(tmp_path: Path) -> None:
    fd = writer(tmp_path / "blob")
    running = RunningHash(len(DATA))
    for offset in range(0, len(DATA), 30_000):
        write(fd, running, offset, min(offset + 30_000, len(DATA)))
    assert running.complete and running.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_parts_written_out_of_order_from_several_threads(tmp_path: Path) -> None:
    fd = writer(tmp_path / "blob")
    running = RunningHash(len(DATA))
    parts = [(o, min(o + 40_000, len(DATA))) for o in range(0, len(DATA), 40_000)]

    def part(start: int, end: int) -> None:
        for offset in range(start, end, 7_000):
            write(fd, running, offset, min(offset + 7_000, end))

    threads = [threading.Thread(target=part, args=p) for p in reversed(parts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert running.complete and running.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_a_resumed_file_is_hashed_from_disk_up_to_the_new_bytes(tmp_path: Path) -> None:
    fd = writer(tmp_path / "blob")
    os.pwrite(fd, DATA[:50_000], 0)  # fetched before a restart
    os.pwrite(fd, DATA[100_000:120_000], 100_000)
    running = RunningHash(len(DATA))
    running.seed(0, 50_000)
    running.seed(100_000, 120_000)
    write(fd, running, 120_000, len(DATA))
    assert running.hashed == 50_000  # waits for the gap
    write(fd, running, 50_000, 100_000)
    assert running.complete and running.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_a_gap_leaves_the_hash_incomplete(tmp_path: Path) -> None:
    fd = writer(tmp_path / "blob")
    running = RunningHash(len(DATA))
    write(fd, running, 0, 10_000)
    write(fd, running, 20_000, len(DATA))
    assert running.hashed == 10_000 and not running.complete


def test_a_failed_read_marks_the_hash_unusable(tmp_path: Path) -> None:
    fd = writer(tmp_path / "blob")
    running = RunningHash(len(DATA))
    running.seed(0, 10_000)
    write_only = os.open(tmp_path / "blob", os.O_WRONLY)  # pread fails: EBADF
    with pytest.raises(OSError):
        running.wrote(write_only, 10_000, DATA[10_000:20_000])
    write(fd, running, 20_000, len(DATA))
    assert running.broken and not running.complete


async def test_adopt_checks_a_running_digest_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    blobs.root.mkdir()
    path = blobs.root / "x-partial"
    path.write_bytes(DATA)
    expected = "sha256:" + hashlib.sha256(DATA).hexdigest()
    with pytest.raises(BlobCorruptError):
        await blobs.adopt_file(path, expected, sha256_hex="0" * 64)
    assert not path.exists() and not blobs.path(expected).exists()
    path.write_bytes(DATA)
    assert await blobs.adopt_file(path, expected, sha256_hex=expected[7:]) == len(DATA)
    assert blobs.path(expected).read_bytes() == DATA


async def test_a_parallel_part_pull_is_not_read_back_to_be_hashed(
        service, fake, remote, tmp_path, monkeypatch) -> None:
    from tests.registry.transfer_helpers import gguf_file
    gguf = gguf_file(tmp_path / "model.gguf", WEIGHTS // 4)
    fake.add_gguf_model("library/tiny", "v1", gguf)
    running_digests = []
    adopt = BlobStore.adopt_file

    async def spy(self, path, expected, *, sha256_hex=None):
        running_digests.append(sha256_hex)
        return await adopt(self, path, expected, sha256_hex=sha256_hex)

    monkeypatch.setattr(BlobStore, "adopt_file", spy)
    assert (await pull(service, f"{remote}/library/tiny:v1"))[-1]["status"] == "success"
    assert digest(gguf)[7:] in running_digests and None not in running_digests
    assert not [n for n in blob_files(service) if "partial" in n]


async def test_parts_stay_exact_when_every_write_also_saves_state(
        service, fake, remote, tmp_path, monkeypatch) -> None:
    # A state save makes a finished write yield before its writer takes it off the books; a
    # chunk arriving then must not be cut short (that shifted the rest of the part on disk,
    # caught only by the digest check).
    import registry.transfer.download as download
    import tests.registry.fake_oci as fake_oci
    save_state = download.BlobDownload._save_state

    async def slow_save_state(self, *, force: bool = False) -> None:
        await asyncio.sleep(0.005)  # a slow disk: the loop reads on meanwhile
        await save_state(self, force=force)

    monkeypatch.setattr(download.BlobDownload, "_save_state", slow_save_state)
    monkeypatch.setattr(fake_oci, "SEND_CHUNK", 1000)
    fake.send_delay = 0.0002  # small chunks keep arriving while a write is in flight
    monkeypatch.setattr(download, "FLUSH_BYTES", 8192)
    from tests.registry.transfer_helpers import gguf_file
    gguf = gguf_file(tmp_path / "model.gguf", WEIGHTS // 4)
    fake.add_gguf_model("library/tiny", "v1", gguf)
    assert (await pull(service, f"{remote}/library/tiny:v1"))[-1]["status"] == "success"
    resolved = await service.store.resolve(f"{remote}/library/tiny:v1")
    assert resolved.model_path.read_bytes() == gguf
