"""The checker behind every e2e response: it would fail a test for each kind of drift."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import httpx
import pytest

from tests.e2e import openapi_check
from tests.e2e.openapi_check import SpecViolation, check_response

JSON = {"Content-Type": "application/json; charset=utf-8"}
NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(autouse=True)
def forget_provoked_violations():
    seen = len(openapi_check.violations)
    yield
    del openapi_check.violations[seen:]


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_a_conforming_response_passes():
    check_response("GET", "http://x/api/version", 200, JSON, body({"version": "0.13.0"}))


@pytest.mark.parametrize(("status", "headers", "payload", "complaint"), [
    (200, JSON, {"version": "1", "extra": 1}, "Additional properties"),
    (200, JSON, {}, "'version' is a required property"),
    (200, {"Content-Type": "text/html"}, {"version": "1"}, "content type 'text/html'"),
    (201, JSON, {"version": "1"}, "status 201 is not documented"),
])
def test_drift_fails(status, headers, payload, complaint):
    with pytest.raises(SpecViolation, match=complaint):
        check_response("GET", "http://x/api/version", status, headers, body(payload))


def test_an_undescribed_route_fails_but_the_routers_404_passes():
    with pytest.raises(SpecViolation, match="no such operation"):
        check_response("GET", "http://x/api/secret", 200, JSON, body({}))
    check_response("GET", "http://x/api/secret", 404, {"Content-Type": "text/plain"},
                   b"404 page not found")
    check_response("PUT", "http://x/api/tags", 405, {"Content-Type": "text/plain"},
                   b"405 method not allowed")


def test_streams_are_checked_line_by_line_even_when_cut_short():
    good = body({"model": "m", "created_at": "2026-01-01T00:00:00Z", "response": "a",
                 "done": False})
    check_response("POST", "http://x/api/generate", 200, NDJSON, good + b"\n" + good[:10],
                   complete=False)
    bad = body({"model": "m", "created_at": "2026-01-01T00:00:00Z", "response": 1, "done": False})
    with pytest.raises(SpecViolation, match="item 1"):
        check_response("POST", "http://x/api/generate", 200, NDJSON, good + b"\n" + bad + b"\n")


def test_path_templates_match_concrete_paths():
    check_response("HEAD", "http://x/api/blobs/sha256-00", 404, {}, b"")
    with pytest.raises(SpecViolation):
        check_response("GET", "http://x/v1/models/m", 200, JSON,
                       body({"id": "m", "object": "model", "created": 1}))


def test_a_multi_segment_parameter_spans_slashes():
    manifest = {"schemaVersion": 2, "config": {"mediaType": "x", "digest": "d", "size": 1},
                "layers": []}
    headers = {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
               "Docker-Content-Digest": "sha256:" + "a" * 64}
    check_response("GET", "http://x/api/manifests/registry.ollama.ai/library/smol:1", 200,
                   headers, body(manifest))


def test_documented_headers_are_required_and_checked():
    refusal = body({"error": "unauthorized"})
    check_response("GET", "http://x/api/tags", 401,
                   {**JSON, "WWW-Authenticate": 'Bearer realm="corral"'}, refusal)
    with pytest.raises(SpecViolation, match="required header WWW-Authenticate is missing"):
        check_response("GET", "http://x/api/tags", 401, JSON, refusal)
    with pytest.raises(SpecViolation, match="header Retry-After"):
        check_response("POST", "http://x/api/chat", 429, {**JSON, "Retry-After": "soon"},
                       body({"error": "slow down"}))


def test_preflights_are_described_on_every_path():
    check_response("OPTIONS", "http://x/v1/messages", 204, {}, b"")
    check_response("OPTIONS", "http://x/v2/library/smol/blobs/sha256:00", 403, JSON,
                   body({"errors": [{"code": "DENIED", "message": "no", "detail": None}]}))


class _Drifted(BaseHTTPRequestHandler):
    """A server whose /api/version has drifted from the spec (a number, not a string)."""

    def do_GET(self) -> None:
        payload = b'{"version": 13}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def drifted() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drifted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    openapi_check.watch(url)
    yield url
    openapi_check.unwatch(url)
    server.shutdown()
    server.server_close()


def test_every_client_hook_catches_drift(drifted):
    openapi_check.install()
    with pytest.raises(SpecViolation, match="13 is not of type 'string'"):
        urllib.request.urlopen(drifted + "/api/version").read()
    with pytest.raises(SpecViolation):
        httpx.get(drifted + "/api/version")  # under the ollama, openai and anthropic SDKs

    async def with_aiohttp() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(drifted + "/api/version") as response:
                await response.json()

    with pytest.raises(SpecViolation):
        asyncio.run(with_aiohttp())
