"""Tracing end to end: a real OTLP/HTTP receiver started here, decoding what the official
exporter of each Corral process sends (``opentelemetry-proto``); one request is one trace
across the gateway, the registry and the runner, with the request id on their spans."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

from services.tracing import GENERATION_SPAN
from tests.e2e.server import ROOT, CorralServer

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
REQUEST_ID = "trace-e2e-0001"


class Receiver(ThreadingHTTPServer):
    """``POST /v1/traces``: keeps every span as (service, name, trace id hex, attributes)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[tuple[str, str, str, dict]] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def found(self) -> list[tuple[str, str, str, dict]]:
        with self.lock:
            return list(self.spans)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {a.key: a.value.string_value for a in span.attributes}
                        self.server.spans.append((resource.get("service.name", ""), span.name,
                                                  span.trace_id.hex(), attributes))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_one_request_is_one_trace_across_gateway_registry_and_runner(tmp_path, receiver):
    server = CorralServer(tmp_path / "models", tmp_path / "serve.log",
                          OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                          OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                          OTEL_BSP_SCHEDULE_DELAY="100").start()
    try:
        status, _, headers = server.request(
            "POST", "/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False,
                                      "options": {"num_predict": 3}},
            headers={"X-Request-Id": REQUEST_ID})
        assert status == 200
        assert {k.lower(): v for k, v in headers.items()}["x-request-id"] == REQUEST_ID

        def spans_of_the_request():
            spans = receiver.found()
            http = [s for s in spans if s[0] == "corral-gateway" and s[1] == "POST /api/generate"
                    and s[3].get("corral.request_id") == REQUEST_ID]
            if not http:
                return None
            trace_id = http[0][2]
            in_trace = [s for s in spans if s[2] == trace_id]
            services = {s[0] for s in in_trace}
            return in_trace if {"corral-registry", "corral-runner"} <= services else None

        deadline = time.monotonic() + 30
        while not (in_trace := spans_of_the_request()):
            assert time.monotonic() < deadline, sorted({(s[0], s[1]) for s in receiver.found()})
            time.sleep(0.2)
    finally:
        server.stop()
    names = {(service, name) for service, name, _, _ in in_trace}
    resolve = "/corral.registry.v1.Registry/ResolveModel"
    generate = GENERATION_SPAN  # one generation on the runner's shared GenerateStream
    assert ("corral-gateway", resolve) in names  # the client side of each call...
    assert ("corral-registry", resolve) in names  # ...and the server side
    assert ("corral-gateway", generate) in names
    assert ("corral-runner", generate) in names
    for service, name, _, attributes in in_trace:
        if service != "corral-gateway" and name in (resolve, generate):
            assert attributes.get("corral.request_id") == REQUEST_ID, (service, name)


def test_without_an_endpoint_nothing_of_opentelemetry_is_imported():
    code = """
import sys
from gateway.app import create_app
from gateway.scheduler import Scheduler
from services.settings import GatewaySettings
from services.tracing import setup_tracing
import registry.__main__, runner.process
settings = GatewaySettings.from_env({})
assert setup_tracing("gateway", http_server=True, grpc_client=True, env={}) is False
create_app(settings, registry=None, scheduler=Scheduler(settings))
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
"""
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
