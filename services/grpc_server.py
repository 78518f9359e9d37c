"""gRPC server bootstrap shared by the registry and the runner.

One shape everywhere: an interceptor binds the caller's request id and translates domain
exceptions into statuses; the standard health service reports readiness; SIGINT/SIGTERM set an
event, health flips to NOT_SERVING and the server stops with a grace period.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.context import REQUEST_ID_HEADER, bind_request_id
from services.errors import ERROR_METADATA_KEY, CorralError

log = structlog.get_logger()


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Binds ``x-request-id`` into the log context and turns ``CorralError`` into a status."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream), handler.request_deserializer,
                handler.response_serializer)
        return handler


def _bind(context: grpc.aio.ServicerContext) -> None:
    structlog.contextvars.clear_contextvars()
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER:
            bind_request_id(value)


async def _abort(context: grpc.aio.ServicerContext, exc: CorralError) -> None:
    context.set_trailing_metadata(((ERROR_METADATA_KEY, type(exc).__name__),))
    await context.abort(exc.grpc_code, exc.message)


def _wrap_unary(behavior: Callable[..., Awaitable]):
    async def wrapper(request, context):
        _bind(context)
        try:
            return await behavior(request, context)
        except CorralError as exc:
            await _abort(context, exc)

    return wrapper


def _wrap_stream(behavior: Callable[..., AsyncIterator]):
    async def wrapper(request, context):
        _bind(context)
        try:
            async for response in behavior(request, context):
                yield response
        except CorralError as exc:
            await _abort(context, exc)

    return wrapper


class GrpcService:
    """A grpc.aio server with health, bound to one address, run until a stop signal."""

    def __init__(self, address: str, service_names: Iterable[str]) -> None:
        self.address = address
        self.server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        self.health = health.aio.HealthServicer()
        self._service_names = [*service_names, ""]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port(address)
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
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("service did not become healthy in time")
        await asyncio.sleep(0.05)
