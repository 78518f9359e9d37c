"""One blob upload, as Distribution and Ollama's ``uploadBlob`` agree on it.

    HEAD blob ── 200 ──► already there
        └─ 404 ─► POST uploads/ ── 201 ──► already there (mounted)
                     └─ 202 + Location ─► PATCH part (Content-Range a-b), in order, one at a
                                          time, each answer giving the next Location
                                          ─► PUT <Location>&digest=sha256:… ─► 201

Standard registries cannot retry a PATCH (the stored offset must match, and a half-received
attempt cancels the upload), so any failed PATCH restarts the blob's upload session from the
first byte, up to ``attempts`` times; HEAD skips blobs already finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from registry.manifests import Descriptor
from registry.transfer.http import RegistrySession, error_text, raise_for_status
from registry.transfer.remote import MiB, TransferOptions
from services.errors import TransferError, UpstreamError

READ_CHUNK = MiB

log = structlog.get_logger()


class BlobUpload:
    """Upload one stored blob; ``completed`` counts bytes handed to the connection."""

    def __init__(self, session: RegistrySession, descriptor: Descriptor, path: Path,
                 options: TransferOptions) -> None:
        self.session = session
        self.descriptor = descriptor
        self.path = path
        self.options = options
        self.completed = 0

    async def run(self) -> None:
        """Upload the blob; restart the upload session on failed parts."""
        failures = 0
        while True:
            self.completed = 0
            try:
                await self._upload_once()
                log.info("blob_uploaded", digest=self.descriptor.digest, size=self.descriptor.size)
                return
            except TransferError as exc:
                failures += 1
                if not exc.transient or failures >= self.options.attempts:
                    raise
                log.info("blob_upload_restart", digest=self.descriptor.digest, error=exc.message)
            await asyncio.sleep(self.options.backoff_s * 2 ** (failures - 1))

    async def exists(self) -> bool:
        """Whether the registry already has the blob (``HEAD`` → 200)."""
        url = self.session.ref.blob_url(self.descriptor.digest)
        async with self.session.request("HEAD", url) as resp:
            if resp.status == 404:
                return False
            await raise_for_status(resp, f"push blob {self.descriptor.digest}")
            return True

    async def _upload_once(self) -> None:
        location = await self._start()
        if location is None:
            self.completed = self.descriptor.size
            return
        size = self.descriptor.size
        step = self.options.part_size(size)
        for offset in range(0, size, step):
            location = await self._patch(location, offset, min(step, size - offset))
        separator = "&" if location.query_string else "?"
        final = URL(f"{location}{separator}digest={quote(self.descriptor.digest, safe='')}",
                    encoded=True)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": "0"}
        async with self.session.request("PUT", str(final), headers=headers, body=b"") as resp:
            await raise_for_status(resp, f"push blob {self.descriptor.digest}")

    async def _start(self) -> URL | None:
        """POST an upload session; its absolute URL, or ``None`` when the blob is already there."""
        url = self.session.ref.uploads_url()
        async with self.session.request("POST", url, headers={"Content-Length": "0"}, body=b"") as resp:
            await raise_for_status(resp, f"push to {self.session.ref.host}/{self.session.ref.repository}")
            if resp.status == 201:
                return None
            return _next_location(resp, "upload session")

    async def _patch(self, location: URL, offset: int, length: int) -> URL:
        """Send one part; the next session URL. Any failure here is transient (restart)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length),
                   "Content-Range": f"{offset}-{offset + length - 1}"}
        base = self.completed
        try:
            async with self.session.request(
                    "PATCH", str(location), headers=headers, follow=False,
                    body=lambda: self._read(offset, length, base)) as resp:
                if resp.status >= 300:
                    raise UpstreamError(f"push blob {self.descriptor.digest}: {resp.status}: "
                                        f"{await error_text(resp)}", transient=True)
                return _next_location(resp, "upload part")
        except TransferError as exc:
            exc.transient = True
            raise

    async def _read(self, offset: int, length: int, base: int) -> AsyncIterator[bytes]:
        """The part's bytes from the stored blob, read in worker threads."""
        self.completed = base
        with await asyncio.to_thread(open, self.path, "rb") as f:
            await asyncio.to_thread(f.seek, offset)
            remaining = length
            while remaining:
                chunk = await asyncio.to_thread(f.read, min(READ_CHUNK, remaining))
                if not chunk:
                    raise TransferError(f"{self.path} ended early", transient=False)
                remaining -= len(chunk)
                self.completed += len(chunk)
                yield chunk


def _next_location(resp: aiohttp.ClientResponse, what: str) -> URL:
    location = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
    if not location:
        raise UpstreamError(f"{what}: the registry sent no Location header", transient=True)
    return resp.url.join(URL(location, encoded=True))
