"""The gateway's own blob cache: what lets it run models without sharing a disk with the registry.

Before a runner starts, every blob it reads (the weights, each adapter: ``ResolveModelResponse
.blobs``) must be a local file. On the registry's host the registry's own files are used in
place (``corral serve``: nothing is copied). Elsewhere, or whenever ``CORRAL_CACHE_DIR`` is set,
the blob is fetched by digest over the registry's ``ReadBlob`` stream into the cache directory:

* written to a temp file in that directory, hashed while it streams, renamed into place only if
  its sha256 matches, so a cached file is complete and correct or absent. A mismatch (a byte
  flipped in transit) is refused, logged and fetched again, up to ``FETCH_ATTEMPTS`` times;
* one fetch per digest at a time: concurrent loads of one model share it;
* reported as load progress (``model_load_progress`` with ``stage: fetch``), as runners report
  theirs;
* bounded by ``CORRAL_CACHE_MAX``: before a fetch, cached blobs that no loaded runner uses are
  evicted least recently used first (file mtimes, touched on use, survive restarts). A runner
  that maps an evicted file keeps its pages (Linux keeps an unlinked inode alive), and a load
  whose blob was evicted between resolve and spawn fetches it again (``spawner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from gateway.ports import BlobSource, RunnerProcessPort, SpawnFn
from services.atomic_files import TEMP_PREFIX, publish, sync_file, temp_path, write_hashed
from services.errors import (BlobCorruptError, CorralError, InvalidRequestError,
                             ModelNotFoundError, ServerBusyError)
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import GatewaySettings

if TYPE_CHECKING:
    from gateway.runners import RunnerSpec

FETCH_ATTEMPTS = 3
PROGRESS_EVERY_S = 1.0
TOUCH_EVERY_S = 60.0
STALE_TEMP_S = 600.0  # a live fetch writes every second; another gateway may share the dir
_FINAL = (ModelNotFoundError, InvalidRequestError, ServerBusyError)  # retrying cannot help
_BLOB_NAME = re.compile(r"sha256-[0-9a-f]{64}")

log = structlog.get_logger()


def default_cache_dir(env: dict[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/corral/blobs`` (``~/.cache/corral/blobs``)."""
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "corral" / "blobs"


class BlobCache:
    """Local files for the blobs runners read; see the module docstring."""

    def __init__(self, root: Path, registry: BlobSource, *, max_bytes: int = 0,
                 use_registry_files: bool = True) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.use_registry_files = use_registry_files
        self._registry = registry
        self._in_use: Callable[[], Iterable[str]] = lambda: ()
        self._fetches: dict[str, asyncio.Future[Path]] = {}
        self._reserved: dict[str, int] = {}
        self._known: dict[str, str] = {}  # digest -> local path known to hold it
        self._touched: dict[str, float] = {}
        self._space = asyncio.Lock()
        self._cleaned = False

    @classmethod
    def from_settings(cls, settings: GatewaySettings, registry: BlobSource) -> BlobCache:
        """``CORRAL_CACHE_DIR`` set: always fetch into it; unset: the registry's files when this
        host can see them, else the default cache directory."""
        return cls(settings.cache_dir or default_cache_dir(), registry,
                   max_bytes=settings.cache_max, use_registry_files=settings.cache_dir is None)

    def track_in_use(self, in_use: Callable[[], Iterable[str]]) -> None:
        """Where to learn the paths loaded runners use (they are never evicted)."""
        self._in_use = in_use

    def path(self, digest: str) -> Path:
        return self.root / digest.replace(":", "-", 1)

    async def close(self) -> None:
        """Cancel fetches still running (gateway shutdown); their temp files are removed."""
        for fetch in list(self._fetches.values()):
            fetch.cancel()
        await asyncio.gather(*self._fetches.values(), return_exceptions=True)

    async def localize(self, resolved: pb.ResolveModelResponse) -> pb.ResolveModelResponse:
        """``resolved`` with ``model_path`` and ``adapter_paths`` naming local files (fetched
        first when needed). Unchanged when every blob is already readable where it says."""
        local = {ref.path: await self.local_file(ref.digest, ref.size, ref.path,
                                                 model=resolved.model.name)
                 for ref in resolved.blobs}
        if all(path == registry_path for registry_path, path in local.items()):
            return resolved
        out = pb.ResolveModelResponse()
        out.CopyFrom(resolved)
        out.model_path = local.get(resolved.model_path, resolved.model_path)
        out.adapter_paths[:] = [local.get(p, p) for p in resolved.adapter_paths]
        out.projector_paths[:] = [local.get(p, p) for p in resolved.projector_paths]
        return out

    async def local_file(self, digest: str, size: int, registry_path: str = "", *,
                         model: str = "") -> str:
        """A local path holding blob ``digest`` (``size`` bytes, 0 = unknown), fetched if needed."""
        known = self._known.get(digest)
        if known is not None:
            self._touch(digest, known)
            return known
        if self.use_registry_files and registry_path and await _has_size(Path(registry_path), size):
            self._known[digest] = registry_path  # same host or a shared volume: no copy
            return registry_path
        cached = self.path(digest)
        if await _has_size(cached, size):  # complete by construction (renamed after verifying)
            self._known[digest] = str(cached)
            self._touch(digest, str(cached), force=True)
            return str(cached)
        return str(await self._fetch_once(digest, size, model))

    def spawner(self, spawn: SpawnFn) -> SpawnFn:
        """Wrap a runner spawn so that cache files evicted since resolve are fetched again."""
        async def spawn_with_blobs(spec: RunnerSpec) -> RunnerProcessPort:
            projectors = (spec.projector,) if spec.projector else ()
            for path in (spec.model_path, *spec.adapters, *projectors):
                name = Path(path).name
                if Path(path).parent == self.root and _BLOB_NAME.fullmatch(name):
                    if not await asyncio.to_thread(Path(path).is_file):
                        digest = name.replace("-", ":", 1)
                        self._known.pop(digest, None)
                        size = (await self._registry.stat_blob(digest)).size
                        await self.local_file(digest, size, model=spec.model_name)
            return await spawn(spec)
        return spawn_with_blobs

    # -- fetching -------------------------------------------------------------------------------

    async def _fetch_once(self, digest: str, size: int, model: str) -> Path:
        """Fetch ``digest``, sharing one fetch among concurrent callers."""
        pending = self._fetches.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(digest, size, model))
            self._fetches[digest] = pending
            pending.add_done_callback(lambda f: self._forget_fetch(digest, f))
        return await asyncio.shield(pending)

    def _forget_fetch(self, digest: str, fetch: asyncio.Future[Path]) -> None:
        self._fetches.pop(digest, None)
        if not fetch.cancelled():
            fetch.exception()  # retrieved: every waiter may have left before it failed

    async def _fetch(self, digest: str, size: int, model: str) -> Path:
        await self._prepare_dir()
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                async with self._room_for(digest, size):
                    path = await self._download(digest, size, model, attempt)
            except _FINAL:
                raise
            except CorralError as exc:  # refused (digest mismatch) or the stream broke
                event = "blob_fetch_refused" if isinstance(exc, BlobCorruptError) else "blob_fetch_failed"
                log.warning(event, digest=digest, model=model, attempt=attempt, error=exc.message)
                if attempt == FETCH_ATTEMPTS:
                    raise
                continue
            self._known[digest] = str(path)
            return path
        raise AssertionError("unreachable")

    async def _download(self, digest: str, size: int, model: str, attempt: int) -> Path:
        started = time.monotonic()
        log.info("blob_fetch_started", digest=digest, model=model, total=size, attempt=attempt,
                 registry=self._registry.target)
        tmp = temp_path(self.root)
        hasher, done, last_report = hashlib.sha256(), 0, started
        try:
            with await asyncio.to_thread(open, tmp, "xb") as f:
                async for message in self._registry.read_blob(digest):
                    size = message.size or size
                    if message.chunk:
                        await asyncio.to_thread(write_hashed, f, hasher, message.chunk)
                        done += len(message.chunk)
                    if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                        last_report = time.monotonic()
                        _report(digest, model, done, size)
                await asyncio.to_thread(sync_file, f)
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest or (size and done != size):
                raise BlobCorruptError(f'digest mismatch, expected "{digest}", got "{actual}"')
            target = self.path(digest)
            await asyncio.to_thread(publish, tmp, target)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        _report(digest, model, done, done)
        seconds = time.monotonic() - started
        log.info("blob_fetched", digest=digest, model=model, bytes=done, verified=True,
                 path=str(target), duration_ms=round(seconds * 1000, 1),
                 mb_per_s=round(done / max(seconds, 1e-6) / 1e6, 1))
        return target

    async def _prepare_dir(self) -> None:
        if not self._cleaned:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(_remove_temp_files, self.root)
            self._cleaned = True

    # -- space ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _room_for(self, digest: str, size: int) -> AsyncIterator[None]:
        """Reserve ``size`` bytes for the fetch of ``digest``, evicting LRU blobs if need be."""
        async with self._space:
            if self.max_bytes:
                await asyncio.to_thread(self._evict_for, size)
            self._reserved[digest] = size
        try:
            yield
        finally:
            self._reserved.pop(digest, None)

    def _evict_for(self, need: int) -> None:
        """Blocking: unlink least recently used, unused blobs until ``need`` more bytes fit."""
        if need > self.max_bytes:
            raise ServerBusyError(f"blob cache too small: a {need}-byte blob exceeds "
                                  f"CORRAL_CACHE_MAX ({self.max_bytes} bytes)")
        entries = []
        for path in self.root.iterdir():
            if _BLOB_NAME.fullmatch(path.name):
                with contextlib.suppress(FileNotFoundError):
                    stat = path.stat()
                    entries.append((stat.st_mtime, stat.st_size, path))
        used = sum(size for _, size, _ in entries) + sum(self._reserved.values())
        protected = set(self._in_use())
        for _mtime, size, path in sorted(entries):
            if used + need <= self.max_bytes:
                return
            if str(path) in protected:
                continue
            path.unlink(missing_ok=True)
            self._known.pop(path.name.replace("-", ":", 1), None)
            used -= size
            log.info("blob_evicted", digest=path.name.replace("-", ":", 1), bytes=size,
                     cache_bytes=used)
        if used + need > self.max_bytes:
            raise ServerBusyError(
                f"blob cache is full: {need} bytes needed, {used} bytes held by loaded models "
                f"(CORRAL_CACHE_MAX={self.max_bytes}); unload a model and retry")

    def _touch(self, digest: str, path: str, *, force: bool = False) -> None:
        """Record a use for LRU (at most once a minute per blob; only our own cache files)."""
        now = time.monotonic()
        if not path.startswith(str(self.root)):
            return
        if force or now - self._touched.get(digest, 0.0) >= TOUCH_EVERY_S:
            self._touched[digest] = now
            with contextlib.suppress(OSError):
                os.utime(path)


def _report(digest: str, model: str, done: int, total: int) -> None:
    log.info("model_load_progress", stage="fetch", model=model, digest=digest, completed=done,
             total=total, progress=round(done / total, 3) if total else 0.0)


async def _has_size(path: Path, size: int) -> bool:
    try:
        stat = await asyncio.to_thread(path.stat)
    except OSError:
        return False
    return stat.st_size == size or (size == 0 and stat.st_size > 0)


def _remove_temp_files(root: Path) -> None:
    """Temp files of fetches interrupted long ago (not a live fetch of a gateway sharing root)."""
    cutoff = time.time() - STALE_TEMP_S
    for path in root.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.name.startswith(TEMP_PREFIX) and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

