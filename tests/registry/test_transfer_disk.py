"""A full disk fails a pull with a clear error and leaves the model store as it was."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.manifests import MODEL_MEDIA_TYPE
from registry.transfer import download
from services.errors import DiskFullError
from registry.transfer.service import TransferService
from tests.registry.conftest import open_store
from tests.registry.transfer_helpers import fast_options


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs (needs root and mount(8); skipped where either is missing)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def listing(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} if root.exists() else set()


async def test_pull_larger_than_the_disk_changes_nothing(small_disk, fake, remote, tmp_path):
    first, second = os.urandom(1 << 20), os.urandom(2 << 20)  # 1 MiB fits, 3 MiB together do not
    fake.add_model("library/big", "v1", [(MODEL_MEDIA_TYPE, first), (MODEL_MEDIA_TYPE, second)])
    async with open_store(small_disk / "models") as store:
        service = TransferService(store, fast_options(tmp_path))
        blobs_before = listing(store.blobs.root)
        with pytest.raises(DiskFullError) as excinfo:
            async for _ in service.pull(f"{remote}/library/big:v1", insecure=True):
                pass
        await service.close()
        assert excinfo.value.message.startswith("no space left on device")
        assert excinfo.value.http_status == 507
        assert str(store.blobs.root) not in excinfo.value.message  # no server paths for clients
        assert listing(store.blobs.root) == blobs_before  # no blob, no partial file
        assert await store.list_models() == []
    assert sum(fake.served.values()) == 0  # refused before fetching a byte


async def test_disk_filling_up_midway_removes_the_partial(monkeypatch, fake, remote, tmp_path):
    payload = os.urandom(300_000)
    fake.add_model("library/big", "v1", [(MODEL_MEDIA_TYPE, payload)])
    calls = {"n": 0}
    real_write = download.pwrite_all

    def fill_up(fd: int, data: bytes, offset: int) -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data, offset)

    def no_fallocate(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(download, "pwrite_all", fill_up)
    monkeypatch.setattr(os, "posix_fallocate", no_fallocate)
    async with open_store(tmp_path / "models") as store:
        service = TransferService(store, fast_options(tmp_path))
        blobs_before = listing(store.blobs.root)
        with pytest.raises(DiskFullError, match="^no space left on device"):
            async for _ in service.pull(f"{remote}/library/big:v1", insecure=True):
                pass
        await service.close()
        assert listing(store.blobs.root) == blobs_before
        assert await store.list_models() == []
