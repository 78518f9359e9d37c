"""Corral as a registry: the Docker registry v2 / OCI Distribution API on ``/v2/``.

Read side (always): ``GET /v2/`` → ``{}``; ``GET|HEAD /v2/<ns>/<model>/manifests/<ref>`` with the
stored bytes, their media type and ``Docker-Content-Digest``; ``GET|HEAD
/v2/<ns>/<model>/blobs/<digest>`` served from the blob store's file (the registry's ``StatBlob``
gives the path; the gateway shares the models volume) and checked against its digest as it goes
(``gateway.blob_serving``), with ``Range`` → 206 and ``Content-Length`` on HEAD. A blob GET also
carries ``Location: <its own URL>`` so that real Ollama clients — which insist on a Location for a
200 blob answer (ollama#7244) — can pull from Corral too.

Write side, only with ``CORRAL_REGISTRY_WRITE`` (otherwise 405 ``UNSUPPORTED``): ``POST
…/blobs/uploads/`` (also ``?mount=`` and monolithic ``?digest=``), ``PATCH`` (``Content-Range``
honoured by truncating to its start, so a retried part is idempotent), ``PUT ?digest=`` (the
bytes go to the registry's ``PutBlob``, which verifies the sha256) and ``PUT …/manifests/<tag>``.
Upload sessions are temp files of this gateway process. Errors use the OCI ``{"errors": […]}``
body, not Ollama's ``{"error": …}``: the routes form an aiohttp sub-app whose one middleware,
``oci_error_middleware``, is where every failure under ``/v2/`` becomes that body.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.blob_cache import BlobCache
from gateway.blob_relay import stream_blob
from gateway.blob_serving import init_blob_serving, serve_blob
from gateway.keys import BLOBS, REGISTRY, SETTINGS
from gateway.limits import read_body
from gateway.middleware import dialect_error_middleware
from services.errors import (
    BlobCorruptError, CorralError, InvalidModelNameError, InvalidRequestError, ModelNotFoundError,
    RequestTooLargeError,
)
from services.pb.corral.registry.v1 import registry_pb2 as rpb

log = structlog.get_logger()

MAX_MANIFEST_BYTES = 2 << 20  # under gRPC's 4 MiB message limit on the way to the registry
CHUNK = 1 << 20
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_RANGE = re.compile(r"(?:bytes[= ])?(\d+)-(\d+)")
_API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


@dataclass
class Upload:
    """One blob upload session: bytes received so far, in a temp file."""

    id: str
    repository: str
    path: Path
    size: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


UPLOADS = web.AppKey("v2_uploads", dict)
UPLOAD_DIR = web.AppKey("v2_upload_dir", Path)


def oci_error(status: int, code: str, message: str, detail: object = None) -> web.Response:
    body = {"errors": [{"code": code, "message": message, "detail": detail}]}
    return web.Response(status=status, body=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json", **_API_HEADER})


def _oci_reply(request: web.Request, error: CorralError, crashed: bool) -> web.Response:
    return _error_for(error, "UNKNOWN" if crashed else _unknown_code(request))


# The one place a failure under ``/v2/`` becomes an OCI error body.
oci_error_middleware = dialect_error_middleware(_oci_reply)


def _unknown_code(request: web.Request) -> str:
    """The OCI code for "not found" on this route: what the client asked for is unknown."""
    resource = request.match_info.route.resource
    if resource is not None and resource.canonical.endswith("/manifests/{reference}"):
        return "NAME_UNKNOWN" if request.method == "PUT" else "MANIFEST_UNKNOWN"
    return "BLOB_UNKNOWN"


def _error_for(exc: CorralError, unknown: str) -> web.Response:
    if isinstance(exc, ModelNotFoundError):
        return oci_error(404, unknown, exc.message)
    if isinstance(exc, RequestTooLargeError):  # the only /v2 body read under a limit: a manifest
        return oci_error(413, "SIZE_INVALID", "manifest too large")
    if isinstance(exc, InvalidModelNameError):
        return oci_error(400, "NAME_INVALID", "invalid repository name", exc.message)
    if isinstance(exc, BlobCorruptError):
        return oci_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content",
                         exc.message)
    if isinstance(exc, InvalidRequestError):
        return oci_error(400, "MANIFEST_INVALID", exc.message)
    return oci_error(exc.http_status, "UNKNOWN", exc.message)


def _repository(request: web.Request) -> str:
    return f"{request.match_info['namespace']}/{request.match_info['model']}"


def _absolute(request: web.Request, path: str) -> str:
    return str(request.url.with_path(path).with_query(None))


async def base(_request: web.Request) -> web.Response:
    return web.Response(body=b"{}", headers={"Content-Type": "application/json", **_API_HEADER})


async def get_manifest(request: web.Request) -> web.Response:
    reply = await request.config_dict[REGISTRY].get_manifest(
        _repository(request), request.match_info["reference"])
    return web.Response(body=reply.content, headers={
        "Content-Type": reply.media_type, "Docker-Content-Digest": reply.digest,
        "ETag": f'"{reply.digest}"', **_API_HEADER})


async def get_blob(request: web.Request) -> web.StreamResponse:
    digest = request.match_info["digest"]
    if not _DIGEST.fullmatch(digest):
        return oci_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
    stat = await request.config_dict[REGISTRY].stat_blob(digest)
    if not stat.exists:
        return oci_error(404, "BLOB_UNKNOWN", "blob unknown to registry", digest)
    headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest,
               **_API_HEADER}
    if request.method == "GET":
        headers["Location"] = str(request.url)
    local = await _local_copy(request.config_dict[BLOBS], digest, stat)
    if local is None:
        return await stream_blob(request, digest, stat.size, headers)
    return await serve_blob(request, Path(local), digest, headers,
                            lambda message: oci_error(500, "UNKNOWN", message, digest))


async def _local_copy(blobs: BlobCache | None, digest: str,
                      stat: rpb.StatBlobResponse) -> str | None:
    """A file on this host holding the blob: the registry's own (shared disk) or our cached
    copy (``blobs``, a ``BlobCache`` or None); None when the bytes must come from the
    registry's ``ReadBlob`` stream."""
    if blobs is None:
        return stat.path
    candidates = [stat.path] if blobs.use_registry_files else []
    for path in [*candidates, str(blobs.path(digest))]:
        try:
            if (await asyncio.to_thread(os.stat, path)).st_size == stat.size:
                return path
        except OSError:
            continue
    return None


def _writable(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not request.config_dict[SETTINGS].registry_write:
            return oci_error(405, "UNSUPPORTED", "The operation is unsupported.",
                             "pushing to this Corral is off (set CORRAL_REGISTRY_WRITE=1)")
        return await handler(request)
    return guarded


def _upload_headers(request: web.Request, upload: Upload) -> dict[str, str]:
    location = _absolute(request, f"/v2/{upload.repository}/blobs/uploads/{upload.id}")
    return {"Location": location, "Docker-Upload-UUID": upload.id,
            "Range": f"0-{max(upload.size - 1, 0)}", **_API_HEADER}


def _blob_created(request: web.Request, digest: str) -> web.Response:
    return web.Response(status=201, headers={
        "Location": _absolute(request, f"/v2/{_repository(request)}/blobs/{digest}"),
        "Docker-Content-Digest": digest, **_API_HEADER})


async def start_upload(request: web.Request) -> web.Response:
    registry, query = request.config_dict[REGISTRY], request.rel_url.query
    mount = query.get("mount", "")
    if _DIGEST.fullmatch(mount) and (await registry.stat_blob(mount)).exists:
        return _blob_created(request, mount)
    upload = await _new_upload(request)
    digest = query.get("digest", "")
    if digest and request.can_read_body:  # monolithic upload: POST with the whole blob
        return await _finish(request, upload, digest)
    return web.Response(status=202, headers=_upload_headers(request, upload))


async def _new_upload(request: web.Request) -> Upload:
    upload_id = str(uuid.uuid4())
    path = request.app[UPLOAD_DIR] / upload_id
    await asyncio.to_thread(path.touch)
    upload = Upload(id=upload_id, repository=_repository(request), path=path)
    request.app[UPLOADS][upload_id] = upload
    return upload


def _session(request: web.Request) -> Upload | None:
    upload = request.app[UPLOADS].get(request.match_info["upload"])
    return upload if upload and upload.repository == _repository(request) else None


def _unknown_upload() -> web.Response:
    return oci_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")


async def patch_upload(request: web.Request) -> web.Response:
    upload = _session(request)
    if upload is None:
        return _unknown_upload()
    async with upload.lock:
        match = _RANGE.fullmatch(request.headers.get("Content-Range", "").strip())
        if match:
            start = int(match.group(1))
            if start > upload.size:
                return oci_error(416, "BLOB_UPLOAD_INVALID", "blob upload invalid",
                                 f"range starts at {start}, {upload.size} bytes received")
            if start < upload.size:  # a retried part: forget what the failed attempt sent
                await asyncio.to_thread(_truncate, upload.path, start)
                upload.size = start
        await _append(request, upload)
    return web.Response(status=202, headers=_upload_headers(request, upload))


async def upload_status(request: web.Request) -> web.Response:
    upload = _session(request)
    if upload is None:
        return _unknown_upload()
    return web.Response(status=204, headers=_upload_headers(request, upload))


async def finish_upload(request: web.Request) -> web.Response:
    upload = _session(request)
    if upload is None:
        return _unknown_upload()
    async with upload.lock:
        return await _finish(request, upload, request.rel_url.query.get("digest", ""))


async def cancel_upload(request: web.Request) -> web.Response:
    upload = _session(request)
    if upload is None:
        return _unknown_upload()
    await _forget(request.app, upload)
    return web.Response(status=204, headers=_API_HEADER)


async def _finish(request: web.Request, upload: Upload, digest: str) -> web.Response:
    """Append any body, hand the bytes to the registry under ``digest``, end the session."""
    try:
        if not _DIGEST.fullmatch(digest):
            return oci_error(400, "DIGEST_INVALID", "provided digest did not match uploaded content",
                             f"invalid digest {digest!r}")
        await _append(request, upload)
        await request.config_dict[REGISTRY].put_blob(digest, _file_chunks(upload.path))
    finally:
        await _forget(request.app, upload)
    return _blob_created(request, digest)


async def put_manifest(request: web.Request) -> web.Response:
    content = await read_body(request, MAX_MANIFEST_BYTES)
    repository, reference = _repository(request), request.match_info["reference"]
    digest = await request.config_dict[REGISTRY].put_manifest(repository, reference, content)
    return web.Response(status=201, headers={
        "Location": _absolute(request, f"/v2/{repository}/manifests/{digest}"),
        "Docker-Content-Digest": digest, **_API_HEADER})


async def _append(request: web.Request, upload: Upload) -> None:
    with await asyncio.to_thread(open, upload.path, "ab") as f:
        async for chunk in request.content.iter_chunked(CHUNK):
            await asyncio.to_thread(f.write, chunk)
            upload.size += len(chunk)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with await asyncio.to_thread(open, path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


async def _forget(app: web.Application, upload: Upload) -> None:
    app[UPLOADS].pop(upload.id, None)
    await asyncio.to_thread(upload.path.unlink, missing_ok=True)


async def _upload_dir(app: web.Application) -> AsyncIterator[None]:
    app[UPLOAD_DIR] = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="corral-uploads-"))
    yield
    await asyncio.to_thread(shutil.rmtree, app[UPLOAD_DIR], True)


def add_v2_routes(app: web.Application) -> None:
    """Mount ``/v2/`` as a sub-app (its own error middleware; upload and verification state
    live on it). ``GET /v2`` stays on ``app``: a sub-app route cannot be its bare prefix."""
    v2 = web.Application(middlewares=[oci_error_middleware])
    v2[UPLOADS] = {}
    init_blob_serving(v2)
    v2.cleanup_ctx.append(_upload_dir)
    repo = "/{namespace}/{model}"
    uploads = repo + "/blobs/uploads/{upload}"
    v2.router.add_get("/", base)
    v2.router.add_get(repo + "/manifests/{reference}", get_manifest)
    v2.router.add_put(repo + "/manifests/{reference}", _writable(put_manifest))
    v2.router.add_get(repo + "/blobs/{digest}", get_blob)
    v2.router.add_post(repo + "/blobs/uploads/", _writable(start_upload))
    v2.router.add_post(repo + "/blobs/uploads", _writable(start_upload))
    v2.router.add_patch(uploads, _writable(patch_upload))
    v2.router.add_put(uploads, _writable(finish_upload))
    v2.router.add_get(uploads, _writable(upload_status))
    v2.router.add_delete(uploads, _writable(cancel_upload))
    app.router.add_get("/v2", base)
    app.add_subapp("/v2", v2)
