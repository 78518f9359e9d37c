"""OpenTelemetry tracing, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; otherwise nothing of OpenTelemetry is imported.

Each process calls ``setup_tracing`` once at startup, before it builds its servers and channels:
the gateway with the official aiohttp-server instrumentation (a span per HTTP request) and the
gRPC client instrumentation (spans for its registry and runner calls, which carry the trace
context to them), the registry and the runners with the gRPC server instrumentation. So one
request is one trace across the three processes, and every span that knows the request id
carries it as ``corral.request_id``.

Exporting follows OpenTelemetry's own variables (``OTEL_EXPORTER_OTLP_PROTOCOL``,
``..._HEADERS``, ``OTEL_BSP_*``, ...), which reach the runners with the rest of the environment:
that is the OpenTelemetry convention, and Corral's own settings still reach runners as flags.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
REQUEST_ID_ATTRIBUTE = "corral.request_id"
# One generation on the runner's shared GenerateStream: the multiplexed stream outlives every
# request, so each generation gets its own client span (gateway) and server span (runner).
GENERATION_SPAN = "/corral.runner.v1.Runner/Generation"

log = structlog.get_logger()

_enabled = False


def tracing_requested(env: Mapping[str, str] = os.environ) -> bool:
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def setup_tracing(service: str, *, http_server: bool = False, grpc_client: bool = False,
                  grpc_server: bool = False, env: Mapping[str, str] = os.environ) -> bool:
    """Export this process's spans as ``corral-<service>`` and instrument what it runs.

    Returns whether tracing is on. Call before creating the aiohttp application, gRPC servers
    or channels: the instrumentations hook their constructors.
    """
    global _enabled
    if not tracing_requested(env):
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"corral-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(env)))
    trace.set_tracer_provider(provider)
    if http_server:
        from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
        AioHttpServerInstrumentor().instrument()
    if grpc_client:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
        GrpcAioInstrumentorClient().instrument()
    if grpc_server:
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer
        GrpcAioInstrumentorServer().instrument()
    _enabled = True
    log.info("tracing_enabled", service=f"corral-{service}")
    return True


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    """OTLP over HTTP/protobuf (OpenTelemetry's default), or gRPC when the protocol says so."""
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    if protocol == "grpc":  # an optional package, untyped to mypy when absent
        from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as otlp_grpc
        exporter: SpanExporter = otlp_grpc.OTLPSpanExporter()
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def annotate_request_id(request_id: str) -> None:
    """Put the request id on the current span (a no-op, and no import, while tracing is off)."""
    if _enabled:
        from opentelemetry import trace
        trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


class EndableSpan(Protocol):
    def end(self) -> None: ...


@contextmanager
def outgoing_generation() -> Iterator[dict[str, str]]:
    """A client span for one generation sent on a shared stream; yields the trace context to
    send with it (empty, and nothing imported, while tracing is off)."""
    if not _enabled:
        yield {}
        return
    from opentelemetry import propagate, trace
    # not made current: the caller is an async generator, which may resume in another context
    span = trace.get_tracer("corral").start_span(GENERATION_SPAN, kind=trace.SpanKind.CLIENT)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    try:
        yield carrier
    finally:
        span.end()


def incoming_generation(carrier: Mapping[str, str], request_id: str) -> EndableSpan | None:
    """The server span of a generation whose caller sent ``carrier``; the caller ends it when
    the generation ends (None while tracing is off)."""
    if not _enabled:
        return None
    from opentelemetry import propagate, trace
    span = trace.get_tracer("corral").start_span(
        GENERATION_SPAN, context=propagate.extract(dict(carrier)), kind=trace.SpanKind.SERVER)
    if request_id:
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
    return span
