"""The sha256 of a blob computed while its parts are still downloading.

Parts arrive out of order, but a digest needs the bytes in order. ``RunningHash`` keeps a
frontier: bytes written exactly at the frontier are hashed from memory as they are written, and
bytes written beyond it are recorded as extents, read back from the (page-cached) file once the
frontier reaches them. A single-part download is thus hashed entirely from memory, on the writer
threads, while the network keeps delivering, so the blob can enter the store without a second
full read. If anything goes wrong the hash is marked unusable and the caller re-hashes the file.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading

READ_CHUNK = 4 << 20


class RunningHash:
    """sha256 over a file of ``size`` bytes written at arbitrary offsets, never overlapping.

    ``wrote`` is called from worker threads after each write; at most one of them hashes at a
    time (the others only record their extent), so the digest state is never shared.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.hashed = 0
        self.broken = False
        self._hasher = hashlib.sha256()
        self._extents: list[list[int]] = []  # sorted, merged [start, end) written past the frontier
        self._hashing = False
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        return not self.broken and self.hashed == self.size

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def seed(self, start: int, end: int) -> None:
        """Bytes ``[start, end)`` are already in the file (a resumed download)."""
        with self._lock:
            self._add(start, end)

    def wrote(self, fd: int, offset: int, data: bytes | bytearray) -> None:
        """``data`` was just written at ``offset`` of the file open as ``fd`` (readable)."""
        with self._lock:
            if self.broken:
                return
            if self._hashing or offset != self.hashed:
                self._add(offset, offset + len(data))
                if self._hashing or not self._extents or self._extents[0][0] > self.hashed:
                    return
                data = b""
            self._hashing = True
        try:
            self._hasher.update(data)
            self._advance(fd, len(data))
        except BaseException:
            with self._lock:
                self.broken, self._hashing = True, False
            raise

    def _advance(self, fd: int, hashed_now: int) -> None:
        """Move the frontier past ``hashed_now`` bytes, then through every extent it reaches."""
        while True:
            with self._lock:
                self.hashed += hashed_now
                extent = self._take_reached()
                if extent is None:
                    self._hashing = False
                    return
            hashed_now = self._hash_from_file(fd, self.hashed, extent[1])

    def _take_reached(self) -> list[int] | None:
        """The first extent if the frontier has reached it (trimmed to start there)."""
        while self._extents and self._extents[0][0] <= self.hashed:
            extent = self._extents.pop(0)
            if extent[1] > self.hashed:
                return [self.hashed, extent[1]]
        return None

    def _hash_from_file(self, fd: int, start: int, end: int) -> int:
        position = start
        while position < end:
            chunk = os.pread(fd, min(READ_CHUNK, end - position), position)
            if not chunk:
                raise OSError(f"unexpected end of file at {position} while hashing")
            self._hasher.update(chunk)
            position += len(chunk)
        return end - start

    def _add(self, start: int, end: int) -> None:
        """Insert ``[start, end)`` into the sorted extents, merging touching neighbours."""
        if end <= start:
            return
        i = bisect.bisect_left(self._extents, [start, end])
        if i > 0 and self._extents[i - 1][1] >= start:
            i -= 1
            start = self._extents[i][0]
            end = max(end, self._extents[i][1])
            del self._extents[i]
        while i < len(self._extents) and self._extents[i][0] <= end:
            end = max(end, self._extents[i][1])
            del self._extents[i]
        self._extents.insert(i, [start, end])
