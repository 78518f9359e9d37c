"""The request id that ties one request's log lines together across processes."""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

import grpc
import structlog

REQUEST_ID_HEADER = "x-request-id"

# A servicer method's ``context``: the servicers use its status and metadata calls, never
# its request/response type parameters, so one alias serves every method.
ServicerContext: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def new_request_id() -> str:
    """A short random id; 16 hex chars are plenty to tell requests apart in logs."""
    return uuid.uuid4().hex[:16]


def bind_request_id(request_id: str) -> None:
    """Attach ``request_id`` to every log line of the current task (and tasks it spawns)."""
    structlog.contextvars.bind_contextvars(request_id=request_id)


def current_request_id() -> str | None:
    """The request id bound to the current task, if any."""
    return structlog.contextvars.get_contextvars().get("request_id")


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """gRPC metadata that carries the current request id to the next process."""
    request_id = current_request_id()
    return ((REQUEST_ID_HEADER, request_id),) if request_id else ()
