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
import enum
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final, Literal, TypeVar

from aiohttp import web

from gateway.middleware import dialect_error_middleware
from gateway.streaming import stream_reply
from services.context import current_request_id
from services.errors import CorralError
from services.gocodec import encode_json
from services.json_types import JSONObject

PING_INTERVAL_S = 10.0


class _Marker(enum.Enum):
    """``with_keepalive``'s own values: typed, so ``item is KEEPALIVE`` narrows for mypy."""

    KEEPALIVE = "keepalive"
    END = "end"


KEEPALIVE: Final = _Marker.KEEPALIVE  # what ``with_keepalive`` yields while its source is silent
T = TypeVar("T")

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> JSONObject:
    body: dict[str, Any] = {"type": "error", "error": {
        "type": _ERROR_TYPES.get(status, "api_error"), "message": message}}
    if request_id := current_request_id():
        body["request_id"] = request_id
    return body


def json_reply(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=encode_json(obj), status=status,
                        headers={"Content-Type": "application/json"})


def _error_reply(_request: web.Request, error: CorralError, _crashed: bool) -> web.Response:
    return json_reply(error_body(error.http_status, error.message), error.http_status)


# The ``/v1/messages`` sub-app's one translator: every failure in Anthropic's error shape.
anthropic_error_middleware = dialect_error_middleware(_error_reply)


async def with_keepalive(source: AsyncIterator[T], interval: float
                         ) -> AsyncGenerator[T | Literal[_Marker.KEEPALIVE], None]:
    """``source``'s items, with ``KEEPALIVE`` after every ``interval`` seconds of silence."""
    pending: asyncio.Future[T | Literal[_Marker.END]] | None = None
    end: Final = _Marker.END
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


def _event(obj: JSONObject) -> bytes:
    kind: str = obj["type"]
    return b"event: " + kind.encode() + b"\ndata: " + encode_json(obj) + b"\n\n"


async def sse_events(request: web.Request,
                     events: AsyncGenerator[JSONObject, None]) -> web.StreamResponse:
    """Send ``events``; a failure before the first one is an ordinary error reply."""
    return await stream_reply(
        request, events, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        encode=_event, error=lambda exc: _event(error_body(exc.http_status, exc.message)))
