"""An in-process OCI registry (aiohttp) with fault injection, for pull/push tests.

It serves manifests and blobs the way Distribution does (blob GET → 200, or 206 for a
``Range``), or 307-redirects blob GETs to a "CDN" route on another host name (``localhost``
vs ``127.0.0.1``) that refuses any ``Authorization`` header. It can demand a bearer token
(Ollama's ed25519-signed token request, verified here) or Basic credentials, drop a blob
response after N bytes, hang midway, serve tampered bytes, and fail PATCHes. It counts every
blob byte it serves.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from registry.manifests import CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MODEL_MEDIA_TYPE
from registry.transfer.auth import EMPTY_BODY_HASH_B64

SEND_CHUNK = 16 * 1024


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_bytes(layers: list[tuple[str, bytes]], config: bytes) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
           "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest(config), "size": len(config)},
           "layers": [{"mediaType": t, "digest": digest(d), "size": len(d)} for t, d in layers]}
    return json.dumps(doc, separators=(",", ":")).encode()


def verify_signed(header: str, url: str) -> bytes:
    """Ollama's token-request signature: ``<ssh pub b64>:<sig b64>`` over GET,url,const."""
    pub_b64, _, sig_b64 = header.partition(":")
    wire = base64.b64decode(pub_b64)
    name_len = int.from_bytes(wire[:4], "big")
    assert wire[4:4 + name_len] == b"ssh-ed25519"
    raw = wire[8 + name_len:]
    Ed25519PublicKey.from_public_bytes(raw).verify(
        base64.b64decode(sig_b64), f"GET,{url},{EMPTY_BODY_HASH_B64}".encode())
    return raw


@dataclass
class FakeOCI:
    """State and knobs; ``app()`` builds the aiohttp application."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    redirect: bool = False
    auth: str = ""  # "", "bearer" or "basic"
    basic: tuple[str, str] = ("alice", "s3cret")
    drops: dict[str, list[int]] = field(default_factory=dict)  # digest → bytes per request, then drop
    hang_from: int | None = None  # ranges starting at/after this offset hang after half their bytes
    send_delay: float = 0.0  # seconds between pieces of a blob body (a slow link)
    tampered: set[str] = field(default_factory=set)
    fail_patches: int = 0
    served: Counter = field(default_factory=Counter)
    ranges: list[tuple[str, int]] = field(default_factory=list)  # (digest, start) of blob GETs
    log: list[tuple[str, str, dict]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token → the scope it was issued for
    signers: list[bytes] = field(default_factory=list)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends every hang
    port: int = 0

    def add_model(self, repository: str, tag: str, layers: list[tuple[str, bytes]],
                  config: bytes = b'{"model_format":"gguf"}\n') -> bytes:
        for _, data in layers:
            self.blobs[digest(data)] = data
        self.blobs[digest(config)] = config
        content = manifest_bytes(layers, config)
        self.manifests[(repository, tag)] = content
        return content

    def add_gguf_model(self, repository: str, tag: str, gguf: bytes) -> bytes:
        return self.add_model(repository, tag, [(MODEL_MEDIA_TYPE, gguf)])

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record], client_max_size=1 << 30)
        repo = "/v2/{ns}/{model}"
        app.router.add_get(repo + "/manifests/{ref}", self._manifest)
        app.router.add_put(repo + "/manifests/{ref}", self._put_manifest)
        app.router.add_get(repo + "/blobs/{digest}", self._blob)
        app.router.add_post(repo + "/blobs/uploads/", self._start_upload)
        app.router.add_patch(repo + "/blobs/uploads/{id}", self._patch)
        app.router.add_put(repo + "/blobs/uploads/{id}", self._finish)
        app.router.add_get("/cdn/{digest}", self._cdn)
        app.router.add_get("/token", self._token)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler):
        self.log.append((request.method, request.path_qs, dict(request.headers)))
        return await handler(request)

    def _challenge(self, request: web.Request, actions: str) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scope = self.tokens.get(header.removeprefix("Bearer "), "")
        if self.auth == "bearer" and ("pull" not in scope or "push" in actions and "push" not in scope):
            repo = f"{request.match_info['ns']}/{request.match_info['model']}"
            value = (f'Bearer realm="http://127.0.0.1:{self.port}/token",service="fake",'
                     f'scope="repository:{repo}:{actions}"')
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401,
                                     headers={"WWW-Authenticate": value})
        if self.auth == "basic":
            expected = "Basic " + base64.b64encode(":".join(self.basic).encode()).decode()
            if header != expected:
                return web.Response(status=401, text="basic auth required",
                                    headers={"WWW-Authenticate": 'Basic realm="fake"'})
        return None

    async def _token(self, request: web.Request) -> web.Response:
        url = f"http://{request.host}{request.raw_path}"
        try:
            self.signers.append(verify_signed(request.headers["Authorization"], url))
        except Exception:  # noqa: BLE001 - any failure is a refusal
            return web.Response(status=401, text="bad signature")
        if abs(int(request.query["ts"]) - time.time()) > 60:
            return web.Response(status=401, text="stale")
        token = uuid.uuid4().hex
        self.tokens[token] = " ".join(request.query.getall("scope", []))
        return web.json_response({"token": token})

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._challenge(request, "pull")) is not None:
            return denied
        key = (f"{request.match_info['ns']}/{request.match_info['model']}", request.match_info["ref"])
        if key not in self.manifests:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN",
                                                  "message": "manifest unknown"}]}, status=404)
        return web.Response(body=self.manifests[key], content_type=MANIFEST_MEDIA_TYPE)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._challenge(request, "pull")) is not None:
            return denied
        name = request.match_info["digest"]
        if name not in self.blobs:
            return web.Response(status=404)
        if self.redirect and request.method == "GET":
            raise web.HTTPTemporaryRedirect(f"http://localhost:{self.port}/cdn/{name}?sig=x")
        return await self._serve(request, name)

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:
            return web.Response(status=400, text="the CDN must not see registry credentials")
        return await self._serve(request, request.match_info["digest"])

    async def _serve(self, request: web.Request, name: str) -> web.StreamResponse:
        data = self.blobs[name]
        if name in self.tampered:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start, end, status = 0, len(data) - 1, 200
        if (rng := request.headers.get("Range")):
            a, _, b = rng.removeprefix("bytes=").partition("-")
            start, end, status = int(a), min(int(b or end), end), 206
        headers = {"Content-Length": str(end - start + 1), "Docker-Content-Digest": name}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        self.ranges.append((name, start))
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        budget = self.drops[name].pop(0) if self.drops.get(name) else None
        hang = self.hang_from is not None and start >= self.hang_from
        limit = (end - start + 1) // 2 if hang else budget
        body = memoryview(data)[start:end + 1]
        sent = 0
        while sent < len(body):
            piece = body[sent:sent + SEND_CHUNK]
            if limit is not None:
                piece = piece[:limit - sent]
            await response.write(bytes(piece))
            if self.send_delay:
                await asyncio.sleep(self.send_delay)
            sent += len(piece)
            self.served[name] += len(piece)
            if limit is not None and sent >= limit:
                if hang:
                    await asyncio.wait_for(self.release.wait(), 30)
                request.transport.close()
                return response
        await response.write_eof()
        return response

    async def _start_upload(self, request: web.Request) -> web.Response:
        if (denied := self._challenge(request, "push,pull")) is not None:
            return denied
        upload = uuid.uuid4().hex
        self.uploads[upload] = bytearray()
        return web.Response(status=202, headers={"Location": self._upload_url(request, upload)})

    def _upload_url(self, request: web.Request, upload: str) -> str:
        repo = f"{request.match_info['ns']}/{request.match_info['model']}"
        return f"http://127.0.0.1:{self.port}/v2/{repo}/blobs/uploads/{upload}?_state=a%3D%3D"

    async def _patch(self, request: web.Request) -> web.Response:
        if (denied := self._challenge(request, "push,pull")) is not None:
            return denied
        upload = request.match_info["id"]
        body = await request.read()
        if self.fail_patches:
            self.fail_patches -= 1
            self.uploads.pop(upload, None)
            return web.json_response({"errors": [{"code": "BLOB_UPLOAD_INVALID"}]}, status=400)
        if upload not in self.uploads:
            return web.Response(status=404, text="upload unknown")
        self.uploads[upload] += body
        return web.Response(status=202, headers={"Location": self._upload_url(request, upload)})

    async def _finish(self, request: web.Request) -> web.Response:
        if (denied := self._challenge(request, "push,pull")) is not None:
            return denied
        data = bytes(self.uploads.pop(request.match_info["id"], b"")) + await request.read()
        if parse_qs(urlsplit(request.path_qs).query).get("_state") != ["a=="]:
            return web.Response(status=400, text="state lost")
        if digest(data) != request.query.get("digest"):
            return web.json_response({"errors": [{"code": "DIGEST_INVALID"}]}, status=400)
        self.blobs[digest(data)] = data
        return web.Response(status=201, headers={"Docker-Content-Digest": digest(data)})

    async def _put_manifest(self, request: web.Request) -> web.Response:
        if (denied := self._challenge(request, "push,pull")) is not None:
            return denied
        if request.match_info["model"] != request.match_info["model"].lower():
            return web.Response(status=404, text="404 page not found")
        repo = f"{request.match_info['ns']}/{request.match_info['model']}"
        content = await request.read()
        self.manifests[(repo, request.match_info["ref"])] = content
        return web.Response(status=201, headers={"Docker-Content-Digest": digest(content)})
