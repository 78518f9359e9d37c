"""A download in progress on disk: ``sha256-<hex>-partial`` and its ``-partial.json`` state.

Why sidecar files, not a pulls-in-progress table: the state (digest, size and each part's
offset/size/completed) describes bytes in the file next to it, so both live and die together —
deleting a partial by hand, restoring a backup or crashing between a DB commit and a write can
never leave a row promising bytes that are not there. The state is written (tmp + rename) only
after the bytes it counts, so it may lag the data, never lead it; the final re-hash catches
anything else. The names are Ollama's (``-partial``), which its pruning and ours both leave
alone as non-digest names. The data file is allocated to the blob's full size when created, so
a full disk shows before any byte is fetched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from registry.blobs import BlobStore

PARTIAL_SUFFIX = "-partial"
STATE_SUFFIX = "-partial.json"


@dataclass
class Part:
    """One ``Range`` of the blob; ``completed`` bytes from ``offset`` are on disk."""

    offset: int
    size: int
    completed: int = 0

    @property
    def done(self) -> bool:
        return self.completed >= self.size

    @property
    def end(self) -> int:
        """Inclusive last byte, as ``Range`` wants it."""
        return self.offset + self.size - 1


class PartialFile:
    """The partial data file of one blob and its parts. Every method blocks (use a thread)."""

    def __init__(self, blobs: BlobStore, digest: str, size: int, part_size: int) -> None:
        self.digest, self.size, self.part_size = digest, size, part_size
        stem = blobs.path(digest).name
        self.data_path: Path = blobs.root / (stem + PARTIAL_SUFFIX)
        self.state_path: Path = blobs.root / (stem + STATE_SUFFIX)
        self.parts: list[Part] = []
        self._lock = threading.Lock()  # state writes and discard run in worker threads
        self._discarded = False

    @property
    def completed(self) -> int:
        return sum(min(p.completed, p.size) for p in self.parts)

    def mark_complete(self) -> None:
        self.parts = [Part(0, self.size, self.size)]

    def prepare(self) -> bool:
        """Restore or start the partial file at full size; True when newly created.

        Raises ``OSError(ENOSPC)`` when the space cannot be reserved; a file created by this
        call is removed again first.
        """
        self.data_path.parent.mkdir(parents=True, exist_ok=True)
        self._discarded = False
        self.parts = self._restored_parts() or self._fresh_parts()
        created = not self.data_path.exists()
        try:
            with open(self.data_path, "r+b" if not created else "xb") as f:
                if os.fstat(f.fileno()).st_size != self.size:
                    f.truncate(self.size)
                _allocate(f.fileno(), self.size)
        except OSError:
            if created:
                self.discard()
            raise
        if created or not self.state_path.exists():
            self.write_state()
        return created

    def discard(self) -> None:
        """Delete the partial file and its state; later ``write_state`` calls do nothing."""
        with self._lock:
            self._discarded = True
            self.data_path.unlink(missing_ok=True)
            self.state_path.unlink(missing_ok=True)

    def untouched(self) -> bool:
        """Whether no byte of this blob has been fetched yet (by the state on disk)."""
        parts = self._restored_parts()
        return parts is None or not any(p.completed for p in parts)

    def write_state(self) -> None:
        """Replace the state file atomically with the parts' current counts."""
        state = {"digest": self.digest, "size": self.size,
                 "parts": [[p.offset, p.size, min(p.completed, p.size)] for p in self.parts]}
        with self._lock:
            if self._discarded:
                return
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            tmp.write_text(json.dumps(state) + "\n")
            os.replace(tmp, self.state_path)

    def _fresh_parts(self) -> list[Part]:
        step = self.part_size
        return [Part(offset, min(step, self.size - offset)) for offset in range(0, self.size, step)]

    def _restored_parts(self) -> list[Part] | None:
        """Parts from a state file that matches this blob and a data file that exists."""
        try:
            state = json.loads(self.state_path.read_text())
            parts = [Part(int(o), int(s), int(c)) for o, s, c in state["parts"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        covers = sum(p.size for p in parts) == self.size
        if state.get("digest") != self.digest or not covers or not self.data_path.exists():
            return None
        return parts


def pwrite_all(fd: int, data: bytes | bytearray, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``OSError(ENOSPC)`` on a full disk)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _allocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes now, where the filesystem can (tmpfs, ext4, xfs do)."""
    if size <= 0:
        return
    with contextlib.suppress(AttributeError):
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
