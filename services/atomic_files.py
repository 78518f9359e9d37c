"""Atomic, durable file writes, shared by the registry's blob and manifest stores and the
gateway's blob cache: write a ``.tmp-<random>`` file in the target's own directory (so the
rename cannot cross filesystems), fsync it, rename it into place, fsync the directory. A reader
then sees the old file or the complete new one, even after a crash; never a torn one. And the
one way a whole file is hashed (``file_sha256``), for stores and clients that verify one.

The functions block: callers run them in worker threads.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Protocol

TEMP_PREFIX = ".tmp-"
HASH_CHUNK = 1 << 20


class Hasher(Protocol):
    """What the copy helpers need of a ``hashlib`` object."""

    def update(self, data: bytes, /) -> None: ...


def temp_path(directory: Path) -> Path:
    """A fresh temp file name in ``directory``; stale ones are found by ``TEMP_PREFIX``."""
    return directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"


def write_hashed(f: BinaryIO, hasher: Hasher, chunk: bytes) -> None:
    f.write(chunk)
    hasher.update(chunk)


def sync_file(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def sync_dir(path: Path) -> None:
    """fsync a directory, so a rename in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_sha256(f: BinaryIO) -> str:
    """The hex SHA-256 of the rest of an open file, read in chunks."""
    hasher = hashlib.sha256()
    while chunk := f.read(HASH_CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


def file_sha256(path: Path) -> tuple[str, os.stat_result]:
    """``sha256:<hex>`` of a file and its stat, taken from the same open file (so a
    replacement renamed in meanwhile cannot pair one file's size with another's digest)."""
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        return "sha256:" + read_sha256(f), stat


def publish(tmp: Path, target: Path) -> None:
    """Rename the synced ``tmp`` to ``target`` (mode 0644, as Ollama writes), durably."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    sync_dir(target.parent)
