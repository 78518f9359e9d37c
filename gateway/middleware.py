"""The gateway's two middlewares: request ids + access log, and the error translator for Ollama's
dialect (`/v1`, `/v1/messages` and `/v2` are sub-apps with their own, made by
``dialect_error_middleware``; see create_app). ``failure`` is the one place an exception becomes
the error a client is told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.streaming import error_response
from services.context import REQUEST_ID_HEADER, bind_request_id, new_request_id
from services.errors import CorralError, internal_error
from services.tracing import annotate_request_id

log = structlog.get_logger()

_PLAIN = {"Content-Type": "text/plain"}
_MAX_REQUEST_ID = 128


class Outcome:
    """How a request ended, for the access log and the metrics: its final status (500 until one
    is known) and how long it took."""

    def __init__(self) -> None:
        self.status = 500
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``handler(request)``, recording the status it answers or raises."""
        try:
            response = await handler(request)
            self.status = response.status
            return response
        except web.HTTPException as exc:
            self.status = exc.status
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            self.status = 499  # the client went away (nginx's convention, and Ollama's)
            raise


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the caller's ``x-request-id`` (or a new one) to every log line; echo it back."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "").strip()
    request_id = incoming[:_MAX_REQUEST_ID] if incoming.isprintable() and incoming else new_request_id()
    structlog.contextvars.clear_contextvars()
    bind_request_id(request_id)
    annotate_request_id(request_id)
    outcome = Outcome()
    try:
        return await outcome.handle(request, handler)
    finally:
        log.info("request_finished", method=request.method, path=request.path,
                 status=outcome.status, duration_ms=round(outcome.seconds * 1000, 2))


async def request_id_on_prepare(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: streamed responses get the id header before headers are sent."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = request_id


def failure(exc: Exception) -> tuple[CorralError, bool]:
    """``(error, crashed)``: what the client is told about ``exc``, logged once. A CorralError is
    itself; anything else is a bug, logged with its traceback, and the client gets the taxonomy's
    generic error (no class name, path or stack text)."""
    if isinstance(exc, CorralError):
        log.info("request_error", status=exc.http_status, error=exc.message,
                 error_type=type(exc).__name__)
        return exc, False
    log.exception("request_crashed")
    return internal_error(exc), True


ErrorReply = Callable[[web.Request, CorralError, bool], web.StreamResponse]
"""A dialect's error body for ``(request, error, crashed)``."""


def dialect_error_middleware(reply: ErrorReply) -> Middleware:
    """A sub-app's one translator: every failure answered by ``reply`` (the router's own 404/405
    pass on to the gateway's error middleware)."""

    @web.middleware
    async def translate(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - failure() logs it with its traceback
            return reply(request, *failure(exc))

    return translate


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate every failure into Ollama's wire shape, exactly once."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404, body=b"404 page not found", headers=_PLAIN)
    except web.HTTPMethodNotAllowed:
        return web.Response(status=405, body=b"405 method not allowed", headers=_PLAIN)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - failure() logs it with its traceback
        error, _ = failure(exc)
        return error_response(error.message, error.http_status)
