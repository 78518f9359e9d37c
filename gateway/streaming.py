"""Wire encoding (Go-compatible JSON) and the one streaming helper every dialect writes with.

Ollama's error contract for streams (``server/routes.go`` ``streamResponse``): an error before the
first byte is an ordinary JSON error with its real status; once the 200 has gone out, the error
becomes one last ``{"error": ...}`` line and the stream ends. ``stream_reply`` keeps that contract
for NDJSON here and for the OpenAI and Anthropic SSE streams.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import structlog
from aiohttp import web

from services.errors import CorralError, internal_error
from services.gocodec import encode_json

log = structlog.get_logger()

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
def json_response(obj: object, status: int = 200) -> web.Response:
    """A gin ``c.JSON`` reply: no trailing newline, ``application/json; charset=utf-8``."""
    return web.Response(body=encode_json(obj), status=status,
                        headers={"Content-Type": JSON_CONTENT_TYPE})


def error_response(message: str, status: int) -> web.Response:
    return json_response({"error": message}, status)


def utc_timestamp(ns: int | None = None) -> str:
    """RFC 3339 in UTC with nanoseconds, trailing zeros trimmed, ``Z`` suffix (Go's RFC3339Nano)."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    base = _utc_second(seconds)
    fraction = f"{frac:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    """The date and time part, formatted once per second (every streamed object has one)."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def local_timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in the server's local zone with a numeric offset (``modified_at``, ``expires_at``)."""
    local = moment.astimezone()
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond:06d}".rstrip("0")
    offset = local.strftime("%z")
    return text + ("Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}")


async def ndjson_stream(request: web.Request,
                        objects: AsyncGenerator[dict[str, Any], None]) -> web.StreamResponse:
    """Stream ``objects`` as NDJSON, one flushed line each, following Ollama's error contract."""
    return await stream_reply(request, objects, {"Content-Type": NDJSON_CONTENT_TYPE},
                              encode=_ndjson_line,
                              error=lambda exc: _ndjson_line({"error": exc.message}))


def _ndjson_line(obj: dict[str, Any]) -> bytes:
    return encode_json(obj) + b"\n"


async def stream_reply(request: web.Request, objects: AsyncGenerator[dict[str, Any], None],
                       headers: dict[str, str], *, encode: Callable[[dict[str, Any]], bytes],
                       error: Callable[[CorralError], bytes], end: bytes = b"",
                       ) -> web.StreamResponse:
    """Write each of ``objects`` as ``encode`` makes it, then ``end``. A failure before the first
    object is an ordinary error reply (raised to the middleware); after it, the status is sent,
    so the failure is written in-band as ``error`` makes it and the stream ends."""
    async with contextlib.aclosing(objects):
        first = await anext(objects, None)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        try:
            if first is not None:
                await response.write(encode(first))
            async for obj in objects:
                await response.write(encode(obj))
        except (ConnectionError, web.HTTPException):
            raise
        except Exception as exc:  # noqa: BLE001 - stream_failure logs it with its traceback
            await response.write(error(stream_failure(exc)))
        else:
            if end:
                await response.write(end)
        await response.write_eof()
        return response


def stream_failure(exc: Exception) -> CorralError:
    """What a stream tells its client about ``exc``, logged once: a CorralError as itself, a bug
    with its traceback as the taxonomy's generic error (no class name, path or stack text)."""
    if isinstance(exc, CorralError):
        log.warning("stream_failed", error=exc.message, error_type=type(exc).__name__)
        return exc
    log.exception("stream_failed")
    return internal_error(exc)


async def collect(objects: AsyncGenerator[dict[str, Any], None],
                  merge: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> web.Response:
    """The ``stream:false`` form: gather every object and reply with ``merge(objects)``."""
    async with contextlib.aclosing(objects):
        items = [obj async for obj in objects]
    return json_response(merge(items))
