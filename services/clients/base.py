"""Status → exception translation for every client call, written once."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import grpc

from services.context import outgoing_metadata
from services.errors import from_rpc_error
from services.grpc_server import MESSAGE_SIZE_OPTIONS
from services.settings import GrpcTls

# gRPC's default reconnect backoff starts at 1 s: a runner whose socket appears 0.4 s after spawn
# would be seen as ready only after that second. Our peers are local processes that come up in
# well under a second, so retry fast and cap the backoff low.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 500),
)


def local_channel(target: str, *options: tuple[str, int]) -> grpc.aio.Channel:
    """An insecure channel to a sibling process, reconnecting fast while it starts; its message
    limits match the servers' (``MESSAGE_SIZE_OPTIONS``)."""
    return grpc.aio.insecure_channel(
        target, options=[*FAST_RECONNECT, *MESSAGE_SIZE_OPTIONS, *options])


def service_channel(target: str, tls: GrpcTls | None = None,
                    *options: tuple[str, int]) -> grpc.aio.Channel:
    """A channel to a service that may live on another host: TLS when ``tls`` is enabled and
    ``target`` is a TCP address (unix sockets stay plaintext), fast reconnects either way."""
    credentials = channel_credentials(tls) if tls and not target.startswith("unix:") else None
    if credentials is None:
        return local_channel(target, *options)
    return grpc.aio.secure_channel(target, credentials, options=[*FAST_RECONNECT, *options])


def channel_credentials(tls: GrpcTls) -> grpc.ChannelCredentials | None:
    """Verify the server against ``tls.ca`` (system roots without one); present ``cert``."""
    if not tls.enabled:
        return None
    if bool(tls.cert) != bool(tls.key):
        raise ValueError("CORRAL_GRPC_TLS_CERT and CORRAL_GRPC_TLS_KEY must be set together")
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes() if tls.ca else None,
        private_key=tls.key.read_bytes() if tls.key else None,
        certificate_chain=tls.cert.read_bytes() if tls.cert else None)


_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


def translating(
        method: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Decorate a unary client call: attach the request id, turn gRPC errors into CorralError
    (the client's ``PEER`` names the service in messages about failures gRPC itself reports)."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, _peer(args)) from exc

    return wrapper


def _peer(args: tuple[Any, ...]) -> str:
    return str(getattr(args[0], "PEER", "server")) if args else "server"


async def translated_stream(call: grpc.aio.UnaryStreamCall[Any, _T],
                            peer: str = "server") -> AsyncGenerator[_T, None]:
    """Iterate a server stream, turning gRPC errors into CorralError; cancels on early exit."""
    try:
        async for item in call:
            yield item
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc, peer) from exc
    finally:
        call.cancel()


def metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for an outgoing call (the request id)."""
    return outgoing_metadata()
