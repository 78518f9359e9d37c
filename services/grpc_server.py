"""gRPC server bootstrap shared by the registry and the runner.

One shape everywhere: an interceptor binds the caller's request id and translates domain exceptions
into statuses (anything else is logged with its traceback and leaves as a generic ``CorralError``:
no class name, path or stack text reaches a client); the standard health service reports readiness;
SIGINT/SIGTERM set an event, health flips to NOT_SERVING and the server stops with a grace period.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NoReturn, TypeAlias

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.context import REQUEST_ID_HEADER, ServicerContext, bind_request_id
from services.errors import ERROR_METADATA_KEY, CorralError, internal_error
from services.tracing import annotate_request_id
from services.settings import GrpcTls

log = structlog.get_logger()

# A servicer method as grpc.aio calls it: (request or request iterator, context). The interceptor
# is message-agnostic, so requests and responses are Any here; each servicer types its own.
_UnaryBehavior: TypeAlias = Callable[[Any, ServicerContext], Awaitable[Any]]
_StreamBehavior: TypeAlias = Callable[[Any, ServicerContext], AsyncIterator[Any]]

# Every message we send or accept is bounded by the largest request body the gateway accepts
# (64 MiB, gateway/limits.py) times the few bytes a token or a template adds per byte; gRPC's own
# limit (4 MiB by default) must never be the one that fires, so channels and servers allow this.
MAX_MESSAGE_BYTES = 1024 * 1024 * 1024
# An error's text travels in the grpc-message trailer, which gRPC limits like all metadata (8 KiB
# by default): an error quoting a 20,000-character name came back as RESOURCE_EXHAUSTED. Texts
# are cut to MAX_ERROR_CHARS and metadata may take 1 MiB, far above that even percent-encoded.
MAX_ERROR_CHARS = 8 * 1024
MAX_METADATA_BYTES = 1024 * 1024
MESSAGE_SIZE_OPTIONS = (("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
                        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES))


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Binds ``x-request-id`` into the log context and turns every exception into a status."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails],
                               Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        for kind, make_handler, wrap in _KINDS:
            behavior = getattr(handler, kind)
            if behavior:
                return make_handler(wrap(behavior, handler_call_details.method),
                                    handler.request_deserializer, handler.response_serializer)
        return handler


def _bind(context: ServicerContext) -> None:
    structlog.contextvars.clear_contextvars()
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):  # bytes only for "-bin" keys
            bind_request_id(value)
            annotate_request_id(value)


async def _abort(context: ServicerContext, exc: CorralError) -> NoReturn:
    context.set_trailing_metadata(((ERROR_METADATA_KEY, type(exc).__name__),))
    message = exc.message
    if len(message) > MAX_ERROR_CHARS:  # keep both ends: "name "xx…xx" is invalid"
        message = message[:MAX_ERROR_CHARS - 512] + "…" + message[-512:]
    await context.abort(exc.grpc_code, message)


def _translated(method: str, exc: Exception) -> CorralError:
    """``exc`` as the taxonomy has it: a CorralError as itself; anything else is a bug, logged
    with its traceback, and the caller gets the taxonomy's generic error."""
    if isinstance(exc, CorralError):
        return exc
    log.error("rpc_crashed", method=method, exc_info=exc)
    return internal_error(exc)


def _wrap_unary(behavior: _UnaryBehavior, method: str = "") -> _UnaryBehavior:
    async def wrapper(request: Any, context: ServicerContext) -> Any:
        _bind(context)
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing untranslated leaves
            await _abort(context, _translated(method, exc))

    return wrapper


def _wrap_stream(behavior: _StreamBehavior, method: str = "") -> _StreamBehavior:
    async def wrapper(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        _bind(context)
        try:
            async for response in behavior(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing untranslated leaves
            await _abort(context, _translated(method, exc))

    return wrapper


# Each kind of RPC handler: its attribute, the grpc factory that rebuilds it, and our wrapper.
_KINDS = (("unary_unary", grpc.unary_unary_rpc_method_handler, _wrap_unary),
          ("unary_stream", grpc.unary_stream_rpc_method_handler, _wrap_stream),
          ("stream_unary", grpc.stream_unary_rpc_method_handler, _wrap_unary),
          ("stream_stream", grpc.stream_stream_rpc_method_handler, _wrap_stream))


class GrpcService:
    """A grpc.aio server with health, bound to one address, run until a stop signal."""

    def __init__(self, address: str, service_names: Iterable[str], tls: GrpcTls | None = None) -> None:
        self.address = address
        self.server = grpc.aio.server(interceptors=[ErrorInterceptor()],
                                      options=MESSAGE_SIZE_OPTIONS)
        self.health = health.aio.HealthServicer()
        self._service_names = [*service_names, ""]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        credentials = server_credentials(tls) if tls and not address.startswith("unix:") else None
        self.tls = credentials is not None
        self.port = (self.server.add_secure_port(address, credentials) if credentials
                     else self.server.add_insecure_port(address))
        if self.port == 0:
            raise OSError(f"cannot bind gRPC server to {address}")

    async def set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in self._service_names:
            await self.health.set(name, status)

    async def start(self) -> None:
        await self.set_serving(False)
        await self.server.start()

    async def stop(self, grace: float = 5.0) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)


def server_credentials(tls: GrpcTls) -> grpc.ServerCredentials | None:
    """TLS credentials from ``tls`` (None when it names no certificate).

    With a CA the server requires and verifies client certificates (mutual TLS): only holders
    of a certificate that CA signed (the gateways) get in. Unix sockets stay plaintext: they
    never leave the machine and their file permissions guard them.
    """
    if not tls.cert and not tls.key:
        return None
    if not (tls.cert and tls.key):
        raise ValueError("CORRAL_GRPC_TLS_CERT and CORRAL_GRPC_TLS_KEY must be set together")
    pair = [(tls.key.read_bytes(), tls.cert.read_bytes())]
    if tls.ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=tls.ca.read_bytes(),
                                       require_client_auth=True)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, for ``main`` coroutines to await."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_for_serving(channel: grpc.aio.Channel, *, timeout: float, service: str = "") -> None:
    """Poll the health service until it says SERVING; raise ``TimeoutError`` otherwise."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            # types-grpcio-health-checking declares HealthStub without its methods
            reply: health_pb2.HealthCheckResponse = await stub.Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=service), timeout=1.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("service did not become healthy in time")
        await asyncio.sleep(0.05)
