"""Shared, resumable, parallel ranged blob downloads into the blob store.

A blob is fetched into ``blobs/sha256-<hex>-partial`` (allocated to its full size up front, so a
full disk fails before any byte is fetched) in parts of ``TransferOptions.part_size`` that
download concurrently with ``Range`` requests, each retried from where it stopped. The bytes
are hashed as they are written (``hashing.RunningHash``) and enter the store only through
``BlobStore.adopt_file``, which checks that digest (or re-hashes the file when the running hash
could not cover every byte): a blob whose bytes do not match its digest never lands.

How the partial files persist across restarts, and why as sidecar files: see ``partial``.

``DownloadManager`` keeps one ``BlobDownload`` per digest: a second pull needing the same blob
attaches to the running download and reports the same counters (Ollama's
``blobDownloadManager``). When the last follower leaves, the download is cancelled and its
partial files stay for the next pull to resume, in this process or after a restart.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import aiohttp
import structlog

from registry.blobs import BlobStore
from registry.manifests import Descriptor
from registry.transfer.hashing import RunningHash
from registry.transfer.http import RegistrySession, raise_for_status
from registry.transfer.partial import Part, PartialFile, pwrite_all
from registry.transfer.remote import MiB, TransferOptions
from services.errors import (DISK_FULL_MESSAGE, BlobCorruptError, DiskFullError, TransferError,
                             UpstreamError)

_T = TypeVar("_T")

FLUSH_BYTES = 4 * MiB
FLUSH_INTERVAL_S = 0.25  # progress and resumability on slow links
STATE_INTERVAL_S = 1.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

log = structlog.get_logger()


def disk_full(blobs: BlobStore, needed: int) -> DiskFullError:
    """The client's message names the bytes needed, not the server's paths (those are logged)."""
    log.warning("store_full", store=str(blobs.root), needed_bytes=needed)
    return DiskFullError(f"{DISK_FULL_MESSAGE}: the download needs {needed} bytes; "
                         "the model store was left unchanged")


class BlobDownload:
    """One blob being fetched; followed by every pull that needs it."""

    def __init__(self, blobs: BlobStore, descriptor: Descriptor, options: TransferOptions,
                 prepare_lock: asyncio.Lock) -> None:
        self.blobs = blobs
        self.prepare_lock = prepare_lock  # one prepare at a time: two pulls may race to create
        self.digest, self.size = descriptor.digest, descriptor.size
        self.options = options
        self.partial = PartialFile(blobs, self.digest, self.size, options.part_size(self.size))
        self.task: asyncio.Task[None] | None = None
        self.followers = 0
        self._fd = -1
        self._hash = RunningHash(self.size)
        self._saved_at = 0.0
        self._state_lock = asyncio.Lock()
        self._prepared = asyncio.Event()
        self._threads: set[asyncio.Future[Any]] = set()

    @property
    def completed(self) -> int:
        return self.partial.completed

    async def prepare_async(self) -> bool:
        """``PartialFile.prepare`` in a worker thread, under the manager's prepare lock."""
        async with self.prepare_lock:
            return await asyncio.to_thread(self.partial.prepare)

    async def _save_state(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._saved_at >= STATE_INTERVAL_S:
            self._saved_at = now
            async with self._state_lock:  # parts save concurrently; one writer at a time
                await self._in_thread(self.partial.write_state)

    async def run(self, session: RegistrySession) -> None:
        """Fetch every unfinished part, then verify and move the blob into the store."""
        if await self.blobs.size(self.digest) is not None:  # a finished download beat us to it
            self.partial.mark_complete()
            await asyncio.to_thread(self.partial.discard)
            self._prepared.set()
            return
        try:
            await self.prepare_async()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(self.blobs, self.size) from exc
            log.warning("download_prepare_failed", path=str(self.partial.data_path), error=str(exc))
            raise TransferError(f"preparing the download failed: {exc.strerror}") from exc
        self._prepared.set()
        resumed = self.completed
        log.info("blob_download_started", digest=self.digest, size=self.size,
                 parts=len(self.partial.parts), resumed_bytes=resumed)
        for part in self.partial.parts:
            self._hash.seed(part.offset, part.offset + min(part.completed, part.size))
        self._fd = await asyncio.to_thread(os.open, self.partial.data_path, os.O_RDWR)
        full = False
        try:
            await _run_all([self._part(p, session) for p in self.partial.parts if not p.done])
        except OSError as exc:
            full = exc.errno == errno.ENOSPC
            if not full:
                log.warning("download_write_failed", path=str(self.partial.data_path),
                            error=str(exc))
                raise TransferError(f"writing the download failed: {exc.strerror}") from exc
            raise disk_full(self.blobs, self.size) from exc
        finally:
            await self._settle()
            await asyncio.to_thread(os.close, self._fd)
            if full:
                await asyncio.to_thread(self.partial.discard)
            elif self.partial.data_path.exists():
                await self._save_state(force=True)
        await self._commit()
        log.info("blob_download_finished", digest=self.digest, fetched_bytes=self.size - resumed)

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn`` in a worker thread that finishes even when its caller is cancelled, and
        is awaited by ``_settle`` before the file is closed or deleted (a thread still writing
        to a closed, reused descriptor would corrupt another file)."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._threads.add(task)
        task.add_done_callback(self._threads.discard)
        return await asyncio.shield(task)

    async def _settle(self) -> None:
        while self._threads:
            await asyncio.gather(*list(self._threads), return_exceptions=True)

    async def _commit(self) -> None:
        running = self._hash.hexdigest() if self._hash.complete else None
        try:
            await self.blobs.adopt_file(self.partial.data_path, self.digest, sha256_hex=running)
        except BlobCorruptError as exc:
            raise TransferError(f"{exc.message}: file must be downloaded again") from exc
        finally:
            await asyncio.to_thread(self.partial.state_path.unlink, missing_ok=True)

    async def _part(self, part: Part, session: RegistrySession) -> None:
        """Download one part, retrying with backoff; an attempt that made progress is free."""
        failures = 0
        while not part.done:
            before = part.completed
            try:
                await self._fetch(part, session)
                continue
            except TransferError as exc:
                if not exc.transient:
                    raise
                error = exc
            await self._save_state(force=True)
            failures = 0 if part.completed > before else failures + 1
            if failures >= self.options.attempts:
                raise UpstreamError(f"pulling {self.digest}: {error.message}")
            log.info("blob_part_retry", digest=self.digest, offset=part.offset,
                     completed=part.completed, error=error.message)
            if failures:
                await asyncio.sleep(self.options.backoff_s * 2 ** (failures - 1))

    async def _fetch(self, part: Part, session: RegistrySession) -> None:
        start = part.offset + part.completed
        url = session.ref.blob_url(self.digest)
        async with session.request("GET", url, headers={"Range": f"bytes={start}-{part.end}"}) as resp:
            skip = self._body_offset(resp, start)
            if skip is None:
                await raise_for_status(resp, f"pull blob {self.digest}")
                raise UpstreamError(f"pull blob {self.digest}: unexpected status {resp.status}")
            writer = _PartWriter(self, part)
            try:
                async for chunk in resp.content.iter_any():
                    if skip >= len(chunk):
                        skip -= len(chunk)
                        continue
                    await writer.add(chunk[skip:skip + part.size - writer.received])
                    skip = 0
                    if writer.received >= part.size:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamError(f"reading {url}: {exc or type(exc).__name__}",
                                    transient=True) from exc
            finally:  # keep what arrived, also when the connection broke
                await writer.close()
        if not part.done:
            raise UpstreamError(f"reading {url}: unexpected EOF", transient=True)

    def _body_offset(self, resp: aiohttp.ClientResponse, start: int) -> int | None:
        """How many body bytes precede ``start``: 0 for a matching 206, ``start`` for a 200
        (the whole blob, Range ignored); ``None`` for anything else."""
        if resp.status == 200:
            return start
        if resp.status == 206:
            match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if match and int(match.group(1)) == start:
                return 0
            raise UpstreamError(f"pull blob {self.digest}: bad Content-Range "
                                f"{resp.headers.get('Content-Range')!r} for offset {start}")
        return None

    async def _write(self, part: Part, data: bytearray) -> None:
        if not data:
            return
        await self._in_thread(self._write_at, data, part.offset + part.completed)
        part.completed += len(data)
        await self._save_state()

    def _write_at(self, data: bytearray, offset: int) -> None:
        """Worker thread: write, then hash what the write made contiguous."""
        pwrite_all(self._fd, data, offset)
        self._hash.wrote(self._fd, offset, data)

    async def follow(self) -> AsyncIterator[int]:
        """Completed byte counts as they change (every ``progress_interval_s`` at most), ending
        when the download ends; re-raises its error. Leaving early cancels the download when
        nobody else follows it."""
        assert self.task is not None
        self.followers += 1
        prepared = asyncio.ensure_future(self._prepared.wait())
        try:
            # wait for the parts to be known, so a resumed download's first line shows its bytes
            await asyncio.wait([self.task, prepared], return_when=asyncio.FIRST_COMPLETED)
            last = None
            while True:
                finished = self.task.done()
                if self.completed != last:
                    last = self.completed
                    yield last
                if finished:
                    self.task.result()
                    return
                await asyncio.wait([self.task], timeout=self.options.progress_interval_s)
        finally:
            prepared.cancel()
            self.followers -= 1
            # not when already cancelling: a second cancel would cut its cleanup (the state
            # save that lets a later pull resume) short
            if self.followers == 0 and not self.task.done() and not self.task.cancelling():
                log.info("blob_download_abandoned", digest=self.digest, completed=self.completed)
                self.task.cancel()


class _PartWriter:
    """Buffers one part's incoming bytes and writes them with at most one write in flight, so
    the network keeps delivering while the previous buffer is written and hashed."""

    def __init__(self, download: BlobDownload, part: Part) -> None:
        self.download, self.part = download, part
        self.buffer = bytearray()
        self.in_flight: asyncio.Task[None] | None = None
        self.flushed = time.monotonic()
        # Counted here, not derived from part.completed: a write in flight updates that
        # counter before it finishes, and counting its bytes twice would cut the next chunk.
        self.received = part.completed

    async def add(self, data: bytes) -> None:
        self.buffer += data
        self.received += len(data)
        if (len(self.buffer) >= FLUSH_BYTES or self.received >= self.part.size
                or time.monotonic() - self.flushed >= FLUSH_INTERVAL_S):
            await self._flush()

    async def _flush(self) -> None:
        await self._wait()
        if self.buffer:
            data, self.buffer = self.buffer, bytearray()
            self.in_flight = asyncio.ensure_future(self.download._write(self.part, data))
        self.flushed = time.monotonic()

    async def _wait(self) -> None:
        if self.in_flight is not None:
            try:
                await self.in_flight
            finally:
                self.in_flight = None

    async def close(self) -> None:
        """Write what is buffered and wait for every write."""
        await self._flush()
        await self._wait()


class DownloadManager:
    """One ``BlobDownload`` per digest, process-wide."""

    def __init__(self, blobs: BlobStore, options: TransferOptions) -> None:
        self.blobs = blobs
        self.options = options
        self._active: dict[str, BlobDownload] = {}
        self._prepare_lock = asyncio.Lock()

    async def reserve(self, descriptors: Iterable[Descriptor]) -> list[str]:
        """Allocate the partial files of every blob a pull is about to fetch, before fetching
        any; return the digests whose partial files this call created. On a full disk remove
        those again and raise ``DiskFullError``."""
        descriptors = list(descriptors)
        created: list[BlobDownload] = []
        needed = sum(d.size for d in descriptors)
        try:
            for descriptor in descriptors:
                if descriptor.digest in self._active:
                    continue
                download = self._download(descriptor)
                if await download.prepare_async():
                    created.append(download)
            return [d.digest for d in created]
        except OSError as exc:
            for download in created:
                await asyncio.to_thread(download.partial.discard)
            if exc.errno == errno.ENOSPC:
                raise disk_full(self.blobs, needed) from exc
            raise TransferError(f"preparing the download: {exc}") from exc

    async def release(self, descriptors: Iterable[Descriptor], *, everything: bool) -> None:
        """Delete the partial files of these blobs that no running download uses: all of them
        with ``everything``, else only those with no byte fetched yet (the rest stay for a
        resume)."""
        for descriptor in descriptors:
            if descriptor.digest not in self._active:
                partial = self._download(descriptor).partial
                if everything or await asyncio.to_thread(partial.untouched):
                    await asyncio.to_thread(partial.discard)

    def running(self, digest: str) -> BlobDownload | None:
        """The download of ``digest`` in progress, if any."""
        return self._active.get(digest)

    def attach(self, descriptor: Descriptor, session: RegistrySession) -> BlobDownload:
        """The running download of ``descriptor``, or a new one started with ``session``."""
        download = self._active.get(descriptor.digest)
        if download is None:
            download = self._download(descriptor)
            download.task = asyncio.create_task(download.run(session))
            self._active[descriptor.digest] = download
            download.task.add_done_callback(lambda _t: self._active.pop(descriptor.digest, None))
        return download

    def _download(self, descriptor: Descriptor) -> BlobDownload:
        return BlobDownload(self.blobs, descriptor, self.options, self._prepare_lock)

    async def close(self) -> None:
        """Cancel every download (partial files stay for a later resume)."""
        tasks = [d.task for d in self._active.values() if d.task is not None]
        for task in tasks:
            if not task.cancelling():  # a second cancel would cut its cleanup (state save) short
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_all(coroutines: list[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; the first failure cancels the rest and is raised."""
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

