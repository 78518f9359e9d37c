"""Status → exception translation for every client call, written once."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable

import grpc

from services.context import outgoing_metadata
from services.errors import from_rpc_error


def translating(method: Callable):
    """Decorate a unary client call: attach the request id, turn gRPC errors into CorralError."""

    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    return wrapper


async def translated_stream(call) -> AsyncIterator:
    """Iterate a server stream, turning gRPC errors into CorralError; cancels on early exit."""
    try:
        async for item in call:
            yield item
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from exc
    finally:
        call.cancel()


def metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for an outgoing call (the request id)."""
    return outgoing_metadata()
