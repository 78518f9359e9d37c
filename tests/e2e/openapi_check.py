"""Every response an end-to-end test receives from Corral is checked against the OpenAPI spec.

One checker (``check_response``) and one switch (``install``), hooked under the HTTP clients the
tests use, so no test has to ask for it:

* ``urllib.request`` (``CorralServer.request/post/stream`` and any direct ``urlopen``): a global
  opener whose handler wraps each response and checks it once it has been read;
* ``httpx`` (the ``ollama``, ``openai`` and ``anthropic`` SDKs): the transports' byte streams are
  teed and checked when they close;
* ``aiohttp.ClientSession``: its responses' bodies are checked when they are released.

Only servers registered with ``watch`` (every ``CorralServer.start``) are checked. A path or
method the spec does not describe fails, unless it is the router's own ``404 page not found`` /
``405 method not allowed``. A header the response documents as required must be there (and
match its schema); a path parameter marked ``x-multi-segment`` may span ``/``. A stream the
client stops reading early is checked line by line up to where it stopped. Violations raise
``SpecViolation`` in the test and are also collected, so one swallowed by a client library
still fails the test (``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import httpx
from jsonschema import FormatChecker
from jsonschema.validators import Draft202012Validator

from gateway.openapi import load_spec

ROUTER_TEXT = {404: b"404 page not found", 405: b"405 method not allowed"}
JSON_TYPES = ("application/json",)
_DRAIN_LIMIT = 8 << 20

_watched: set[str] = set()
violations: list[str] = []
_lock = threading.Lock()


class SpecViolation(AssertionError):  # noqa: N818 - an assertion, named as one
    """A response Corral sent that its OpenAPI document does not allow."""


def watch(url: str) -> None:
    _watched.add(urlsplit(url).netloc)


def unwatch(url: str) -> None:
    _watched.discard(urlsplit(url).netloc)


def watched(url: str) -> bool:
    return urlsplit(str(url)).netloc in _watched


# -- the checker ----------------------------------------------------------------------------------

@functools.cache
def _spec() -> dict:
    return load_spec()


@functools.cache
def _routes() -> list[tuple[re.Pattern, str]]:
    """Path templates as regexes, literal ones first (``/v2/`` before ``/v2/{namespace}/...``)."""
    templates = sorted(_spec()["paths"], key=lambda t: (t.count("{"), -len(t)))
    return [(re.compile("^" + re.sub(r"\\\{([^}]+)\\\}", lambda m: _segment(t, m.group(1)),
                                     re.escape(t)) + "$"), t)
            for t in templates]


def _segment(template: str, name: str) -> str:
    """The regex of path parameter ``name``: one segment, or any (``x-multi-segment``)."""
    item = _spec()["paths"][template]
    parameters = [*item.get("parameters", []),
                  *(p for op in item.values() if isinstance(op, dict)
                    for p in op.get("parameters", []))]
    spans = any(p.get("in") == "path" and p.get("name") == name and p.get("x-multi-segment")
                for p in parameters)
    return ".+" if spans else "[^/]+"


def _resolve(obj: dict) -> dict:
    while "$ref" in obj:
        node: Any = _spec()
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


@functools.cache
def _validator(template: str, method: str, status: str, media: str) -> Draft202012Validator:
    operation = _spec()["paths"][template][method]
    schema = _resolve(operation["responses"][status])["content"][media]["schema"]
    # The whole document is the root, so "#/components/..." references resolve inside it.
    return Draft202012Validator({**_spec(), **schema}, format_checker=FormatChecker())


def _fail(message: str) -> None:
    with _lock:
        violations.append(message)
    raise SpecViolation(message)


def check_response(method: str, url: str, status: int, headers: Any, body: bytes, *,
                   complete: bool = True) -> None:
    """Raise ``SpecViolation`` unless the spec allows this response (``body`` may be a
    prefix of a stream when ``complete`` is false)."""
    method, path = method.lower(), urlsplit(str(url)).path
    where = f"{method.upper()} {path} → {status}"
    template = next((t for pattern, t in _routes() if pattern.match(path)), None)
    item = _spec()["paths"].get(template, {})
    operation = item.get(method) or (item.get("get") if method == "head" else None)
    if operation is None:
        if ROUTER_TEXT.get(status) == body or (method == "head" and status in ROUTER_TEXT):
            return
        _fail(f"{where}: the OpenAPI spec has no such operation")
    response = operation["responses"].get(str(status)) or operation["responses"].get("default")
    if response is None:
        _fail(f"{where}: status {status} is not documented")
    _check_headers(where, _resolve(response), headers)
    content = _resolve(response).get("content")
    if method == "head":
        return
    if not content:
        if body:
            _fail(f"{where}: documented without a body, got {body[:200]!r}")
        return
    media = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media not in content:
        _fail(f"{where}: content type {media!r} is not documented ({', '.join(content)})")
    status_key = str(status) if str(status) in operation["responses"] else "default"
    if "schema" not in content[media]:
        return
    validator = _validator(template, method if method in item else "get", status_key, media)
    for index, document in enumerate(_documents(media, body, complete)):
        errors = sorted(validator.iter_errors(document), key=lambda e: e.path)
        if errors:
            error = errors[0]
            location = "/".join(map(str, error.absolute_path)) or "(root)"
            _fail(f"{where} [{media}, item {index}] at {location}: {error.message}")


def _check_headers(where: str, response: dict, headers: Any) -> None:
    present = {name.lower(): value for name, value in headers.items()}
    for name, header in (response.get("headers") or {}).items():
        header = _resolve(header)
        value = present.get(name.lower())
        if value is None:
            if header.get("required"):
                _fail(f"{where}: required header {name} is missing")
            continue
        schema = header.get("schema", {})
        if schema.get("type") == "integer":
            value = int(value) if value.isdigit() else value
        errors = list(Draft202012Validator({**_spec(), **schema}).iter_errors(value))
        if errors:
            _fail(f"{where}: header {name}: {errors[0].message}")


def _documents(media: str, body: bytes, complete: bool) -> list[Any]:
    """The JSON documents to validate: the body, each NDJSON line, or each SSE event's data."""
    if media in JSON_TYPES or media.endswith("+json"):
        return [json.loads(body)] if complete else []
    if media == "application/x-ndjson":
        lines = body.split(b"\n")
        if not complete or lines[-1]:
            lines = lines[:-1]  # an unfinished last line
        return [json.loads(line) for line in lines if line.strip()]
    if media == "text/event-stream":
        events = body.split(b"\n\n")
        if not complete or events[-1]:
            events = events[:-1]
        found = []
        for event in events:
            data = b"\n".join(line[5:].lstrip() for line in event.split(b"\n")
                              if line.startswith(b"data:"))
            if data and data != b"[DONE]":
                found.append(json.loads(data))
        return found
    if media == "text/plain":
        return [body.decode("utf-8", "replace")]
    return []  # binary or text formats with no schema worth checking here


# -- urllib ---------------------------------------------------------------------------------------

class _CheckedResponse:
    """An ``http.client.HTTPResponse`` stand-in that records what is read and checks it."""

    def __init__(self, method: str, response: Any) -> None:
        self._method, self._response = method, response
        self._body = bytearray()
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def _record(self, data: bytes, eof: bool) -> bytes:
        self._body += data
        if eof and not self._done:
            self._done = True
            self._check(complete=True)
        return data

    def _check(self, complete: bool) -> None:
        r = self._response
        check_response(self._method, r.geturl(), r.status, r.headers, bytes(self._body),
                       complete=complete)

    def read(self, amt: int | None = None) -> bytes:
        data = self._response.read(amt) if amt is not None else self._response.read()
        return self._record(data, eof=amt is None or not data or amt < 0)

    def read1(self, amt: int = -1) -> bytes:
        data = self._response.read1(amt)
        return self._record(data, eof=not data)

    def readline(self, limit: int = -1) -> bytes:
        data = self._response.readline(limit)
        return self._record(data, eof=not data)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self) -> _CheckedResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._finish_unread()
        self._response.close()

    def _finish_unread(self) -> None:
        """The caller stopped reading: read the rest of a small, finite body; check a stream
        only as far as it was read."""
        r = self._response
        length = r.headers.get("Content-Length")
        if length is not None and int(length) <= _DRAIN_LIMIT and not r.isclosed():
            try:
                self._body += r.read()
            except OSError:
                return
            self._check(complete=True)
        else:
            self._check(complete=False)


class _CheckingHandler(urllib.request.BaseHandler):
    handler_order = 100  # before HTTPErrorProcessor turns a 4xx into an HTTPError

    def http_response(self, request: urllib.request.Request, response: Any) -> Any:
        if not watched(request.full_url):
            return response
        return _CheckedResponse(request.get_method(), response)


# -- httpx ----------------------------------------------------------------------------------------

class _Tee:
    def __init__(self, method: str, url: str, response: Any, stream: Any) -> None:
        self.method, self.url, self.response, self.stream = method, url, response, stream
        self.body = bytearray()
        self.finished = self.checked = False

    def check(self) -> None:
        if not self.checked:
            self.checked = True
            check_response(self.method, self.url, self.response.status_code,
                           self.response.headers, bytes(self.body), complete=self.finished)


class _SyncTee(_Tee, httpx.SyncByteStream):
    def __iter__(self):
        for chunk in self.stream:
            self.body += chunk
            yield chunk
        self.finished = True
        self.check()

    def close(self) -> None:
        self.stream.close()
        self.check()


class _AsyncTee(_Tee, httpx.AsyncByteStream):
    async def __aiter__(self):
        async for chunk in self.stream:
            self.body += chunk
            yield chunk
        self.finished = True
        self.check()

    async def aclose(self) -> None:
        await self.stream.aclose()
        self.check()


def _patch_httpx() -> None:
    sync_send = httpx.HTTPTransport.handle_request
    async_send = httpx.AsyncHTTPTransport.handle_async_request

    def handle_request(self, request):
        response = sync_send(self, request)
        if watched(request.url):
            response.stream = _SyncTee(request.method, str(request.url), response, response.stream)
        return response

    async def handle_async_request(self, request):
        response = await async_send(self, request)
        if watched(request.url):
            response.stream = _AsyncTee(request.method, str(request.url), response,
                                        response.stream)
        return response

    httpx.HTTPTransport.handle_request = handle_request
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request


# -- aiohttp --------------------------------------------------------------------------------------

def _patch_aiohttp() -> None:
    """Check each response when aiohttp releases its connection (the body fully read) or it is
    closed early (checked as far as it was read). Bodies are recorded as the parser feeds them."""
    import aiohttp
    from aiohttp.streams import StreamReader

    taps: dict[int, bytearray] = {}  # id(StreamReader) -> bytes fed so far (it has __slots__)
    original_start = aiohttp.ClientResponse.start
    original_release = aiohttp.ClientResponse.release
    original_close = aiohttp.ClientResponse.close
    original_feed = StreamReader.feed_data

    def feed_data(self, data, *args, **kwargs):
        if (tap := taps.get(id(self))) is not None:
            tap.extend(data)
        return original_feed(self, data, *args, **kwargs)

    async def start(self, connection):
        result = await original_start(self, connection)
        if watched(self.url):
            body = bytearray(b"".join(self.content._buffer))  # arrived with the headers
            taps[id(self.content)] = body
            self._corral_body = body
        return result

    def _check(self, complete: bool) -> None:
        body = getattr(self, "_corral_body", None)
        if body is None:
            return
        self._corral_body = None
        taps.pop(id(self.content), None)
        check_response(self.method, self.url, self.status, self.headers, bytes(body),
                       complete=complete)

    def release(self):
        _check(self, complete=self.content.at_eof())
        return original_release(self)

    def close(self):
        _check(self, complete=False)
        return original_close(self)

    StreamReader.feed_data = feed_data
    aiohttp.ClientResponse.start = start
    aiohttp.ClientResponse.release = release
    aiohttp.ClientResponse.close = close


_installed = False


def install() -> None:
    """Hook the checker under urllib, httpx and aiohttp for this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    urllib.request.install_opener(urllib.request.build_opener(_CheckingHandler()))
    _patch_httpx()
    _patch_aiohttp()
