"""Anthropic's wire: the error shape, typed SSE events, and keep-alive pings.

Every failure answers ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with
the native status (the type follows the status, as in Ollama's ``anthropic.NewError``). A
stream is a series of ``event: <type>`` / ``data: <json>`` pairs; an error after the 200 went
out is one ``error`` event. While the model is silent (loading, a long prompt) a ``ping`` goes
out every ``PING_INTERVAL_S`` so proxies and clients keep the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from services.context import current_request_id
from services.errors import CorralError, internal_error
from services.gocodec import encode_json

log = structlog.get_logger()

PING_INTERVAL_S = 10.0
KEEPALIVE = object()  # what ``with_keepalive`` yields while its source is silent
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> dict:
    body: dict[str, Any] = {"type": "error", "error": {
        "type": _ERROR_TYPES.get(status, "api_error"), "message": message}}
    if request_id := current_request_id():
        body["request_id"] = request_id
    return body


def json_reply(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=encode_json(obj), status=status,
                        headers={"Content-Type": "application/json"})


@web.middleware
async def anthropic_error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """The ``/v1/messages`` sub-app's one translator: every failure in Anthropic's error shape
    (the router's own 404/405 pass on to the gateway's error middleware)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except CorralError as exc:
        log.info("request_error", status=exc.http_status, error=exc.message,
                 error_type=type(exc).__name__)
        return json_reply(error_body(exc.http_status, exc.message), exc.http_status)
    except Exception as exc:
        log.exception("request_crashed")
        error = internal_error(exc)  # no class name, path or stack text for the client
        return json_reply(error_body(error.http_status, error.message), error.http_status)


async def with_keepalive(source: AsyncIterator[Any], interval: float) -> AsyncIterator[Any]:
    """``source``'s items, with ``KEEPALIVE`` after every ``interval`` seconds of silence."""
    pending: asyncio.Future | None = None
    end = object()
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source, end))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield KEEPALIVE
                continue
            item, pending = pending.result(), None
            if item is end:
                return
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


def _event(obj: dict) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + encode_json(obj) + b"\n\n"


async def sse_events(request: web.Request, events: AsyncIterator[dict]) -> web.StreamResponse:
    """Send ``events``; a failure before the first one is an ordinary error reply."""
    async with contextlib.aclosing(events):
        first = await anext(events, None)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            if first is not None:
                await response.write(_event(first))
            async for event in events:
                await response.write(_event(event))
        except (ConnectionError, web.HTTPException):
            raise
        except Exception as exc:
            if not isinstance(exc, CorralError):
                log.exception("stream_failed")
                exc = internal_error(exc)  # no class name, path or stack text for the client
            status, message = exc.http_status, exc.message
            log.warning("stream_failed", error=message, error_type=type(exc).__name__)
            await response.write(_event(error_body(status, message)))
        await response.write_eof()
        return response
