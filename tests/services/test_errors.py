"""The taxonomy survives a real gRPC hop: server raise → status → client exception."""

import contextlib
import errno
import sqlite3
from collections.abc import AsyncIterator

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.clients.base import local_channel, translating
from services.clients.registry import RegistryClient
from services.errors import (INTERNAL_MESSAGE, BlobCorruptError, CorralError, DiskFullError,
                             InvalidModelNameError, InvalidRequestError, ModelNotFoundError,
                             RunnerUnavailableError, ServerBusyError, TransferError,
                             UpstreamError, error_class_named, from_rpc_error, internal_error,
                             is_disk_full)
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

    async def Check(self, request, context):
        if request.service == "sqlite":
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError as exc:
                raise RuntimeError("commit failed") from exc
        raise self.errors[request.service]



@contextlib.asynccontextmanager
async def serving(servicer: health_pb2_grpc.HealthServicer) -> AsyncIterator[str]:
    """``servicer`` behind the ErrorInterceptor on a free port; its address."""
    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@pytest.fixture
async def raising_server():
    async with serving(_RaisingHealth()) as target:
        yield target


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


class _CrashingHealth(health_pb2_grpc.HealthServicer):
    """A servicer with bugs: a unary call and a stream (after one reply) raise KeyError."""

    async def Check(self, request, context):
        raise KeyError("/srv/secret/path")

    async def Watch(self, request, context):
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        raise KeyError("/srv/secret/path")

@pytest.fixture
async def crashing_server():
    async with serving(_CrashingHealth()) as target:
        yield target


async def test_a_bug_is_internal_with_a_generic_message_and_a_structlog_line(crashing_server):
    """grpc's own handling would answer UNKNOWN "Unexpected <class 'KeyError'>: …" and log
    through the stdlib logger; the interceptor answers INTERNAL with the taxonomy's generic
    text and logs the traceback through structlog with the caller's request id."""
    metadata = (("x-request-id", "req-crash-1"),)
    with structlog.testing.capture_logs([structlog.contextvars.merge_contextvars]) as logs:
        async with grpc.aio.insecure_channel(crashing_server) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                await stub.Check(health_pb2.HealthCheckRequest(), metadata=metadata)
            stream = stub.Watch(health_pb2.HealthCheckRequest(), metadata=metadata)
            replies = []
            with pytest.raises(grpc.aio.AioRpcError) as streamed:
                async for reply in stream:
                    replies.append(reply)
    assert len(replies) == 1
    for info in (unary, streamed):
        assert info.value.code() is grpc.StatusCode.INTERNAL
        assert info.value.details() == INTERNAL_MESSAGE
        assert "KeyError" not in info.value.details() and "secret" not in info.value.details()
        assert dict(info.value.trailing_metadata())["corral-error"] == "CorralError"
    crashes = [entry for entry in logs if entry["event"] == "rpc_crashed"]
    assert [entry["method"] for entry in crashes] == ["/grpc.health.v1.Health/Check",
                                                      "/grpc.health.v1.Health/Watch"]
    assert all(entry["request_id"] == "req-crash-1" and entry["log_level"] == "error"
               and isinstance(entry["exc_info"], KeyError) for entry in crashes)


@pytest.mark.parametrize("cls,status,code", [
    (TransferError, 500, grpc.StatusCode.INTERNAL),
    (UpstreamError, 502, grpc.StatusCode.UNAVAILABLE),
])
async def test_transfer_errors_keep_their_class_across_grpc(cls, status, code):
    class Raising(health_pb2_grpc.HealthServicer):
        async def Check(self, request, context):
            raise cls("unauthorized: access denied", transient=True)

    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    health_pb2_grpc.add_HealthServicer_to_server(Raising(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(0)
    assert info.value.code() is code
    error = from_rpc_error(info.value)
    assert type(error) is cls and error.http_status == status
    assert error.message == "unauthorized: access denied"


def test_the_taxonomy_is_closed():
    """Every exception that can cross a process boundary lives in services/errors.py and is
    known by name to ``from_rpc_error``: a subclass elsewhere would lose its class (and status)
    on the way to the client."""
    import ast
    from pathlib import Path

    import services.errors as taxonomy

    names = {name for name, value in vars(taxonomy).items()
             if isinstance(value, type) and issubclass(value, CorralError)}
    assert all(error_class_named(name) is getattr(taxonomy, name) for name in names)
    root = Path(taxonomy.__file__).resolve().parents[1]
    outside = []
    for package in ("gateway", "registry", "runner", "services"):
        for path in (root / package).rglob("*.py"):
            if path.name.endswith("_pb2.py") or path == Path(taxonomy.__file__).resolve():
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and any(
                        getattr(base, "id", getattr(base, "attr", None)) in names
                        for base in node.bases):
                    outside.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    assert outside == []
