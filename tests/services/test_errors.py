"""The taxonomy survives a real gRPC hop: server raise → status → client exception."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import errno
import sqlite3

from services.clients.base import local_channel, translating
from services.clients.registry import RegistryClient
from services.errors import (BlobCorruptError, CorralError, DiskFullError, InvalidModelNameError,
                             InvalidRequestError,
                             ModelNotFoundError, RunnerUnavailableError, ServerBusyError,
                             from_rpc_error, internal_error, is_disk_full)
from services.grpc_server import ErrorInterceptor, GrpcService, wait_for_serving


class _RaisingHealth(health_pb2_grpc.HealthServicer):
    """A stand-in servicer whose Check raises the error named by the service field."""

    errors = {"missing": ModelNotFoundError("model 'x' not found"),
              "badname": InvalidModelNameError(), "busy": ServerBusyError("busy"),
              "corrupt": BlobCorruptError("digest mismatch"),
              "bug": TypeError("this function takes at least 5 arguments (4 given)"),
              "full": OSError(errno.ENOSPC, "No space left on device: '/srv/models/blobs/x'"),
              "sqlite": RuntimeError("wrapped"),
              "long": InvalidRequestError('name "' + "x" * 100_000 + '" is invalid')}

    async def Check(self, request, context):  # noqa: N802 - the gRPC health method
        if request.service == "sqlite":
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError as exc:
                raise RuntimeError("commit failed") from exc
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
    # anything else is a bug: a generic message, never the class, text or paths of the exception
    ("bug", CorralError, "internal server error; the server log has the details"),
    ("full", DiskFullError, "no space left on device"),
    ("sqlite", DiskFullError, "no space left on device"),
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


async def test_a_long_error_text_is_cut_not_turned_into_a_metadata_overflow(raising_server):
    async with local_channel(raising_server) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        @translating
        async def call():
            return await stub.Check(health_pb2.HealthCheckRequest(service="long"))

        with pytest.raises(InvalidRequestError) as info:
            await call()
    message = info.value.message
    assert message.startswith('name "xxx') and message.endswith('x" is invalid')
    assert "…" in message and len(message) <= 8 * 1024 + 1


async def test_a_status_grpc_made_itself_names_the_service_not_its_socket(tmp_path):
    socket = tmp_path / "gone" / "registry.sock"
    client = RegistryClient(f"unix:{socket}")
    try:
        with pytest.raises(RunnerUnavailableError) as info:
            await client.list_models()
    finally:
        await client.close()
    assert info.value.message == "the model registry is unavailable"
    assert info.value.http_status == 503


def test_disk_full_is_recognised_through_the_cause_chain():
    try:
        try:
            raise OSError(errno.EDQUOT, "quota")
        except OSError as inner:
            raise ValueError("while writing") from inner
    except ValueError as outer:
        assert is_disk_full(outer)
        assert type(internal_error(outer)) is DiskFullError
    assert internal_error(KeyError("x")).message.startswith("internal server error")
    assert DiskFullError.http_status == 507
