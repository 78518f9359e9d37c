"""/metrics over the real app and Scheduler with fake runners: each family moves as it should."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics, crash_cause
from gateway.keys import SCHEDULER
from tests.gateway.fakes import Script
from tests.polling import until_async

MODEL = "smollm2:135m"


async def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def gauges(client, *, active: int, queued: int) -> bool:
    """Whether MODEL's request gauges read ``active`` and ``queued`` now."""
    samples = await scrape(client)
    return (value(samples, "corral_requests_active", model=MODEL) == active
            and value(samples, "corral_requests_queued", model=MODEL) == queued)


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_http_requests_are_counted_by_route_template_method_and_status(client):
    await client.get("/api/tags")
    await client.post("/api/show", data=b"")
    await client.get("/no/such/path")
    samples = await scrape(client)
    assert value(samples, "corral_http_requests_total", method="GET", route="/api/tags",
                 status="200") == 1
    assert value(samples, "corral_http_requests_total", method="POST", route="/api/show",
                 status="400") == 1
    assert value(samples, "corral_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert value(samples, "corral_http_request_duration_seconds_count", method="GET",
                 route="/api/tags") == 1


async def test_generation_counts_tokens_latencies_and_a_load(client):
    reply = await client.post("/api/generate", json={"model": MODEL, "prompt": "hi",
                                                     "stream": False})
    assert reply.status == 200
    samples = await scrape(client)
    assert value(samples, "corral_prompt_tokens_total", model=MODEL) == 7
    assert value(samples, "corral_generated_tokens_total", model=MODEL) == 4
    assert value(samples, "corral_time_to_first_token_seconds_count", model=MODEL) == 1
    assert value(samples, "corral_time_per_output_token_seconds_sum", model=MODEL) == 2000 / 4 / 1e9
    assert value(samples, "corral_queue_wait_seconds_count", model=MODEL) == 1
    assert value(samples, "corral_model_loads_total", model=MODEL, result="success") == 1
    assert value(samples, "corral_model_load_duration_seconds_count", model=MODEL) == 1
    assert value(samples, "corral_requests_active", model=MODEL) == 0
    assert value(samples, "corral_requests_queued", model=MODEL) == 0
    assert value(samples, "corral_runners", model=MODEL, state="ready") == 1
    assert value(samples, "corral_models_loaded") == 1


async def test_requests_active_and_queued_while_they_wait(make_client, settings, spawner):
    spawner.script = Script(delay=0.2)
    client = await make_client(settings)
    body = {"model": MODEL, "prompt": "hi", "stream": False}
    first = asyncio.ensure_future(client.post("/api/generate", json=body))
    await until_async(lambda: gauges(client, active=1, queued=0), what="first request active")
    second = asyncio.ensure_future(client.post("/api/generate", json=body))
    await until_async(lambda: gauges(client, active=1, queued=1), what="second request queued")
    for reply in await asyncio.gather(first, second):
        assert reply.status == 200
    samples = await scrape(client)
    assert value(samples, "corral_requests_active", model=MODEL) == 0
    assert value(samples, "corral_requests_queued", model=MODEL) == 0


async def test_a_crash_is_counted_by_cause_and_the_next_start_as_a_restart(client, spawner):
    body = {"model": MODEL, "prompt": "hi", "stream": False}
    assert (await client.post("/api/generate", json=body)).status == 200
    spawner.spawned[0].crash(-9)
    await until_async(lambda: not client.app[SCHEDULER].loaded(), what="crash noticed")
    assert (await client.post("/api/generate", json=body)).status == 200
    samples = await scrape(client)
    assert value(samples, "corral_runner_crashes_total", model=MODEL, cause="SIGKILL") == 1
    assert value(samples, "corral_runner_restarts_total", model=MODEL) == 1
    assert value(samples, "corral_model_loads_total", model=MODEL, result="success") == 2
    assert value(samples, "corral_model_unloads_total", model=MODEL, reason="exited") == 1


async def test_eviction_is_counted(make_client, settings):
    client = await make_client(settings, max_loaded_models=1)
    for model in (MODEL, "gemma3:270m"):
        reply = await client.post("/api/generate", json={"model": model, "prompt": "x",
                                                         "stream": False})
        assert reply.status == 200
    samples = await scrape(client)
    assert value(samples, "corral_model_evictions_total", model=MODEL, reason="model_limit") == 1


async def test_registry_figures_come_from_the_registry_at_scrape_time(client, registry):
    samples = await scrape(client)
    assert value(samples, "corral_registry_up") == 1
    assert value(samples, "corral_registry_models") == 2
    assert value(samples, "corral_registry_blob_bytes") == 1234
    registry.down = True
    samples = await scrape(client)
    assert value(samples, "corral_registry_up") == 0
    assert ("corral_registry_models", ()) not in samples


async def test_openmetrics_is_served_when_asked_for(client):
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).rstrip().endswith("# EOF")


async def test_transfers_count_result_bytes_and_duration():
    class Progress:
        def __init__(self, status: str, transferred: int = 0) -> None:
            self.status, self.transferred = status, transferred

    async def stream(fail: bool):
        yield Progress("pulling manifest")
        if fail:
            raise RuntimeError("boom")
        yield Progress("success", transferred=500)

    metrics = Metrics()
    assert [p.status async for p in metrics.transfer("pull", stream(False))][-1] == "success"
    try:
        async for _ in metrics.transfer("pull", stream(True)):
            pass
    except RuntimeError:
        pass
    get = metrics.registry.get_sample_value
    assert get("corral_registry_transfers_total", {"direction": "pull", "result": "success"}) == 1
    assert get("corral_registry_transfers_total", {"direction": "pull", "result": "error"}) == 1
    assert get("corral_registry_transfer_bytes_total", {"direction": "pull"}) == 500
    assert get("corral_registry_transfer_duration_seconds_count", {"direction": "pull"}) == 2


def test_each_app_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.prompt_tokens.labels("m").inc(5)
    assert second.registry.get_sample_value("corral_prompt_tokens_total", {"model": "m"}) is None


def test_crash_causes_are_short_bounded_labels():
    assert [crash_cause(c) for c in (-9, -11, 1, None)] == ["SIGKILL", "SIGSEGV", "exit_1",
                                                            "unknown"]
