"""Prometheus metrics: ``GET /metrics``, built with prometheus-client on a per-app registry.

Where each figure comes from:

* HTTP requests and latency: ``metrics_middleware`` (label ``route`` is the route template, e.g.
  ``/api/blobs/{digest}``, or ``unmatched``, so paths never explode the label set).
* Per model: the scheduler's hooks (``gateway/observer.py``): requests queued and active,
  queue wait, loads and load time, evictions, unloads, runner crashes (by cause) and restarts;
  token counts and durations from the runner's ``Done`` frame and ``Embed`` reply (over gRPC).
  All of them are counted here, in the gateway, so a runner that crashes or restarts never
  resets a counter.
* Registry: pulls and pushes are counted as their progress streams pass through the gateway
  (the registry reports the bytes it moved on the final ``success`` line); store size and
  model count are asked of the registry (``GetStatus``) at scrape time by ``RegistryCollector``,
  so they are current and nothing polls between scrapes.

With API keys on, ``/metrics`` needs the ``metrics`` scope (``services.apikeys.METRICS``); the route is
named ``metrics`` for the key middleware to find it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Hashable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from gateway.keys import REGISTRY, SCHEDULER
from gateway.middleware import Outcome
from gateway.observer import ObservedRunner, RequestTracker, SchedulerObserver
from gateway.ports import RegistryPort
from gateway.scheduler import Scheduler
from services.errors import CorralError
from services.pb.corral.registry.v1 import registry_pb2 as rpb
from services.pb.corral.runner.v1 import runner_pb2 as pb

SCRAPE_REGISTRY_TIMEOUT_S = 2.0

LATENCY_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
TPOT_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1)
LOAD_BUCKETS = (.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TRANSFER_BUCKETS = (.1, .5, 1, 5, 10, 30, 60, 300, 900, 3600)


def crash_cause(returncode: int | None) -> str:
    """A short, bounded label: ``SIGKILL``, ``SIGSEGV``, ``exit_1`` or ``unknown``."""
    if returncode is None:
        return "unknown"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal_{-returncode}"
    return f"exit_{returncode}"


class Metrics:
    """Every metric family of one gateway, registered on its own ``CollectorRegistry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        model = ["model"]
        self.http_requests = Counter("corral_http_requests", "HTTP requests answered.",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("corral_http_request_duration_seconds",
                                       "HTTP request latency (streams: until the last byte).",
                                       ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("corral_prompt_tokens", "Prompt tokens evaluated.", model,
                                     registry=r)
        self.generated_tokens = Counter("corral_generated_tokens", "Tokens generated.", model,
                                        registry=r)
        self.ttft = Histogram("corral_time_to_first_token_seconds",
                              "From asking the scheduler for a runner to the first generated text.",
                              model, buckets=TTFT_BUCKETS, registry=r)
        self.tpot = Histogram("corral_time_per_output_token_seconds",
                              "Decode time per generated token (one observation per request).",
                              model, buckets=TPOT_BUCKETS, registry=r)
        self.active = Gauge("corral_requests_active", "Requests holding a runner slot.", model,
                            registry=r)
        self.queued = Gauge("corral_requests_queued",
                            "Requests waiting for a load, a slot or a restart backoff.", model,
                            registry=r)
        self.queue_wait = Histogram("corral_queue_wait_seconds",
                                    "Time from arrival at the scheduler to holding a slot "
                                    "(includes a model load the request waited for).",
                                    model, buckets=LATENCY_BUCKETS, registry=r)
        self.loads = Counter("corral_model_loads", "Runner loads, by result.", ["model", "result"],
                             registry=r)
        self.load_duration = Histogram("corral_model_load_duration_seconds",
                                       "From spawning a runner to its model being ready.", model,
                                       buckets=LOAD_BUCKETS, registry=r)
        self.evictions = Counter("corral_model_evictions",
                                 "Idle runners stopped to make room, by reason.",
                                 ["model", "reason"], registry=r)
        self.unloads = Counter("corral_model_unloads", "Runners stopped, by reason.",
                               ["model", "reason"], registry=r)
        self.crashes = Counter("corral_runner_crashes",
                               "Runners that exited without being asked to, by cause.",
                               ["model", "cause"], registry=r)
        self.restarts = Counter("corral_runner_restarts",
                                "Runner starts after the model's previous runner crashed or "
                                "failed to load.", model, registry=r)
        self.transfers = Counter("corral_registry_transfers",
                                 "Pulls and pushes through /api/pull and /api/push, by result.",
                                 ["direction", "result"], registry=r)
        self.transfer_bytes = Counter("corral_registry_transfer_bytes",
                                      "Bytes pulled or pushed over the network.", ["direction"],
                                      registry=r)
        self.transfer_duration = Histogram("corral_registry_transfer_duration_seconds",
                                           "Duration of pulls and pushes.", ["direction"],
                                           buckets=TRANSFER_BUCKETS, registry=r)
        self.observer = MetricsObserver(self)
        self.registry_status = RegistryCollector()
        r.register(self.registry_status)

    def watch_scheduler(self, scheduler: Scheduler) -> None:
        """Report ``scheduler``'s events here, and its runners at every scrape."""
        scheduler.observer = self.observer
        self.registry.register(RunnerCollector(scheduler))

    async def transfer(self, direction: str, progress: AsyncIterator[rpb.Progress]
                       ) -> AsyncGenerator[rpb.Progress, None]:
        """Pass a pull or push progress stream through, counting it when it ends."""
        started = time.monotonic()
        result, transferred = "error", 0
        try:
            async for item in progress:
                if item.status == "success":
                    result, transferred = "success", item.transferred
                yield item
        except (asyncio.CancelledError, GeneratorExit):
            result = "cancelled"
            raise
        finally:
            self.transfers.labels(direction, result).inc()
            self.transfer_bytes.labels(direction).inc(transferred)
            self.transfer_duration.labels(direction).observe(time.monotonic() - started)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The registry's exposition in the format ``accept`` asks for (text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class RequestMetrics(RequestTracker):
    """One request's gauges and histograms."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.metrics, self.model = metrics, model
        self.began = time.monotonic()
        self.holding = False
        metrics.queued.labels(model).inc()

    def __exit__(self, *exc_info: object) -> None:
        (self.metrics.active if self.holding else self.metrics.queued).labels(self.model).dec()

    def started(self, wait_ns: int) -> None:
        m = self.metrics
        self.holding = True
        m.queued.labels(self.model).dec()
        m.active.labels(self.model).inc()
        m.queue_wait.labels(self.model).observe(wait_ns / 1e9)

    def first_token(self) -> None:
        self.metrics.ttft.labels(self.model).observe(time.monotonic() - self.began)

    def generated(self, done: pb.Done) -> None:
        m = self.metrics
        m.prompt_tokens.labels(self.model).inc(done.prompt_eval_count)
        m.generated_tokens.labels(self.model).inc(done.eval_count)
        if done.eval_count > 0:
            m.tpot.labels(self.model).observe(done.eval_duration_ns / 1e9 / done.eval_count)

    def embedded(self, prompt_tokens: int) -> None:
        self.metrics.prompt_tokens.labels(self.model).inc(prompt_tokens)


class MetricsObserver(SchedulerObserver):
    """Scheduler events as counters; remembers which runner keys crashed to count restarts."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._failed: set[Hashable] = set()  # runner keys whose last runner crashed or failed to load

    def request(self, model: str) -> RequestTracker:
        return RequestMetrics(self.metrics, model)

    def starting(self, entry: ObservedRunner) -> None:
        if entry.key in self._failed:
            self._failed.discard(entry.key)
            self.metrics.restarts.labels(entry.spec.model_name).inc()

    def loaded(self, entry: ObservedRunner, seconds: float) -> None:
        self.metrics.loads.labels(entry.spec.model_name, "success").inc()
        self.metrics.load_duration.labels(entry.spec.model_name).observe(seconds)

    def load_failed(self, entry: ObservedRunner) -> None:
        self.metrics.loads.labels(entry.spec.model_name, "failure").inc()
        self._failed.add(entry.key)

    def crashed(self, entry: ObservedRunner, returncode: int | None) -> None:
        self.metrics.crashes.labels(entry.spec.model_name, crash_cause(returncode)).inc()
        self._failed.add(entry.key)

    def evicting(self, entry: ObservedRunner, because: str) -> None:
        self.metrics.evictions.labels(entry.spec.model_name, because).inc()

    def stopped(self, entry: ObservedRunner, reason: str) -> None:
        self.metrics.unloads.labels(entry.spec.model_name, reason).inc()


class RunnerCollector:
    """``corral_runners{model,state}`` and ``corral_models_loaded``, read at scrape time."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        runners = self.scheduler.loaded()
        by_state: dict[tuple[str, str], int] = {}
        for entry in runners:
            key = (entry.spec.model_name, entry.state.value)
            by_state[key] = by_state.get(key, 0) + 1
        runners_family, loaded_family = self._families()
        for (model, state), count in sorted(by_state.items()):
            runners_family.add_metric([model, state], count)
        loaded_family.add_metric([], len({e.spec.model_name for e in runners
                                          if e.state.value == "ready"}))
        return [runners_family, loaded_family]

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("corral_runners", "Runner processes loading or loaded.",
                                  labels=["model", "state"]),
                GaugeMetricFamily("corral_models_loaded", "Models with a ready runner.")]


class RegistryCollector:
    """The registry's store figures, fetched (``refresh``) right before each exposition."""

    def __init__(self) -> None:
        self.status: rpb.GetStatusResponse | None = None

    async def refresh(self, registry: RegistryPort) -> None:
        try:
            self.status = await registry.status(timeout=SCRAPE_REGISTRY_TIMEOUT_S)
        except CorralError:
            self.status = None

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("corral_registry_up", "Whether the registry answered.")]

    def collect(self) -> Iterable[Metric]:
        status = self.status
        yield GaugeMetricFamily("corral_registry_up", "Whether the registry answered.",
                                value=int(status is not None))
        if status is None:
            return
        yield GaugeMetricFamily("corral_registry_models", "Local model names.",
                                value=status.models)
        yield GaugeMetricFamily("corral_registry_blobs", "Blob files in the blob store.",
                                value=status.blobs)
        yield GaugeMetricFamily("corral_registry_blob_bytes", "Bytes of the blob store.",
                                value=status.blob_bytes)


METRICS = web.AppKey("metrics", Metrics)


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route template, method and final status; time it."""
    outcome = Outcome()
    try:
        return await outcome.handle(request, handler)
    finally:
        metrics, route = request.app[METRICS], route_label(request)
        metrics.http_requests.labels(request.method, route, str(outcome.status)).inc()
        metrics.http_duration.labels(request.method, route).observe(outcome.seconds)


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    await metrics.registry_status.refresh(request.app[REGISTRY])
    body, content_type = metrics.exposition(request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


def setup_metrics(app: web.Application) -> None:
    """A fresh ``Metrics`` for ``app`` (watching its scheduler) and the ``/metrics`` route."""
    metrics = app[METRICS] = Metrics()
    metrics.watch_scheduler(app[SCHEDULER])
    app.router.add_get("/metrics", metrics_endpoint, name="metrics")
