"""The taxonomy survives a real gRPC hop: server raise → status → client exception."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.clients.base import translating
from services.errors import (BlobCorruptError, CorralError, InvalidModelNameError,
                             ModelNotFoundError, ServerBusyError, from_rpc_error)
from services.grpc_server import ErrorInterceptor, GrpcService, wait_for_serving


class _RaisingHealth(health_pb2_grpc.HealthServicer):
    """A stand-in servicer whose Check raises the error named by the service field."""

    errors = {"missing": ModelNotFoundError("model 'x' not found"),
              "badname": InvalidModelNameError(), "busy": ServerBusyError("busy"),
              "corrupt": BlobCorruptError("digest mismatch")}

    async def Check(self, request, context):
        raise self.errors[request.service]


@pytest.fixture
async def raising_server():
    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    health_pb2_grpc.add_HealthServicer_to_server(_RaisingHealth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.mark.parametrize("service,cls,message", [
    ("missing", ModelNotFoundError, "model 'x' not found"),
    ("badname", InvalidModelNameError, "invalid model name"),
    ("busy", ServerBusyError, "busy"),
    ("corrupt", BlobCorruptError, "digest mismatch"),
])
async def test_exception_round_trips_through_grpc(raising_server, service, cls, message):
    async with grpc.aio.insecure_channel(raising_server) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        @translating
        async def call():
            return await stub.Check(health_pb2.HealthCheckRequest(service=service))

        with pytest.raises(cls) as info:
            await call()
    assert type(info.value) is cls and info.value.message == message
    assert info.value.http_status == cls.http_status


async def test_health_service_reports_serving():
    service = GrpcService("127.0.0.1:0", ["corral.test.v1.Test"])
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            with pytest.raises(TimeoutError):
                await wait_for_serving(channel, timeout=0.2)
            await service.set_serving(True)
            await wait_for_serving(channel, timeout=2)
    finally:
        await service.stop(0)


def test_unknown_status_maps_to_base_error():
    class FakeRpcError(grpc.aio.AioRpcError):
        def __init__(self):
            pass

        def trailing_metadata(self):
            return None

        def code(self):
            return grpc.StatusCode.UNKNOWN

        def details(self):
            return "boom"

    err = from_rpc_error(FakeRpcError())
    assert type(err) is CorralError and err.http_status == 500
