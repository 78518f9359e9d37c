"""Metrics, health and readiness through a real ``corral serve``, a real model and real peers.

One server for the module, driven in order: real requests move each metric family; a runner
killed with SIGKILL counts one crash and, when the next request starts it again, one restart,
while the token counters keep counting; a push to Debian's docker-registry counts its bytes;
a registry killed with SIGKILL turns ``/readyz`` 503 until ``corral serve`` has restarted it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import CorralServer, cmdline, descendants
from tests.polling import until

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
OPTIONS = {"temperature": 0, "seed": 3, "num_predict": 6}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("observability")
    # One loaded model at a time: the embedding runner then evicts the generation runner.
    srv = CorralServer(base / "models", base / "serve.log", OLLAMA_MAX_LOADED_MODELS="1").start()
    yield srv
    srv.stop()


class Samples(dict):
    def get_value(self, name: str, **labels: str) -> float:
        return self.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(server: CorralServer) -> Samples:
    status, body, headers = server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = Samples()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples




def generate(server: CorralServer, **extra) -> dict:
    status, body = server.post("/api/generate", {"model": MODEL, "prompt": "Name a colour.",
                                                 "stream": False, "options": OPTIONS, **extra})
    assert status == 200, body
    return body


def test_real_requests_move_the_http_token_latency_and_load_families(server):
    reply = generate(server)
    streamed = list(server.stream("/api/chat", {
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "options": OPTIONS}))
    assert streamed[-1]["done"] is True
    samples = scrape(server)
    prompt = reply["prompt_eval_count"] + streamed[-1]["prompt_eval_count"]
    generated = reply["eval_count"] + streamed[-1]["eval_count"]
    assert samples.get_value("corral_prompt_tokens_total", model=MODEL) == prompt
    assert samples.get_value("corral_generated_tokens_total", model=MODEL) == generated
    assert samples.get_value("corral_time_to_first_token_seconds_count", model=MODEL) == 2
    assert samples.get_value("corral_time_per_output_token_seconds_count", model=MODEL) == 2
    assert 0 < samples.get_value("corral_time_per_output_token_seconds_sum", model=MODEL) < 2
    assert samples.get_value("corral_queue_wait_seconds_count", model=MODEL) == 2
    assert samples.get_value("corral_model_loads_total", model=MODEL, result="success") == 1
    assert samples.get_value("corral_model_load_duration_seconds_count", model=MODEL) == 1
    assert samples.get_value("corral_requests_active", model=MODEL) == 0
    assert samples.get_value("corral_requests_queued", model=MODEL) == 0
    assert samples.get_value("corral_runners", model=MODEL, state="ready") == 1
    assert samples.get_value("corral_models_loaded") == 1
    assert samples.get_value("corral_http_requests_total", method="POST",
                             route="/api/generate", status="200") == 1
    assert samples.get_value("corral_http_request_duration_seconds_count", method="POST",
                             route="/api/chat") == 1
    assert samples.get_value("corral_registry_up") == 1
    assert samples.get_value("corral_registry_models") == 1
    assert samples.get_value("corral_registry_blob_bytes") > 50_000_000


def test_embeddings_count_prompt_tokens_and_evict_the_generation_runner(server):
    before = scrape(server).get_value("corral_prompt_tokens_total", model=MODEL)
    status, body = server.post("/api/embed", {"model": MODEL, "input": ["a red apple"]})
    assert status == 200, body
    samples = scrape(server)
    assert samples.get_value("corral_prompt_tokens_total", model=MODEL) == \
        before + body["prompt_eval_count"]
    assert samples.get_value("corral_model_evictions_total", model=MODEL,
                             reason="model_limit") == 1
    assert samples.get_value("corral_model_unloads_total", model=MODEL, reason="evicted") == 1


def test_a_runner_killed_with_sigkill_counts_one_crash_and_counters_survive(server):
    generate(server)
    before = scrape(server)
    (runner,) = server.runner_pids()
    os.kill(runner, signal.SIGKILL)
    until(lambda: scrape(server).get_value("corral_runner_crashes_total", model=MODEL,
                                              cause="SIGKILL") == 1)
    reply = generate(server)
    after = scrape(server)
    assert after.get_value("corral_runner_crashes_total", model=MODEL, cause="SIGKILL") == 1
    assert after.get_value("corral_runner_restarts_total", model=MODEL) == 1
    assert after.get_value("corral_generated_tokens_total", model=MODEL) == \
        before.get_value("corral_generated_tokens_total", model=MODEL) + reply["eval_count"]


def test_pushes_and_pulls_are_counted_with_their_bytes(server, docker_registry):
    remote = f"{docker_registry}/corral/observed:1"
    assert server.request("POST", "/api/copy", {"source": MODEL, "destination": remote})[0] == 200
    for path in ("/api/push", "/api/pull"):
        lines = list(server.stream(path, {"model": remote, "insecure": True}, timeout=300))
        assert lines[-1] == {"status": "success"}, lines[-3:]
    samples = scrape(server)
    size = next(m["size"] for m in server.get("/api/tags")["models"] if m["name"] == remote)
    assert samples.get_value("corral_registry_transfers_total", direction="push",
                             result="success") == 1
    assert samples.get_value("corral_registry_transfer_bytes_total", direction="push") == size
    assert samples.get_value("corral_registry_transfers_total", direction="pull",
                             result="success") == 1
    # every blob was already here: a pull that moved nothing
    assert samples.get_value("corral_registry_transfer_bytes_total", direction="pull") == 0
    assert samples.get_value("corral_registry_transfer_duration_seconds_count",
                             direction="push") == 1


def test_readyz_is_503_while_the_registry_is_down_and_200_once_it_is_back(server):
    assert server.request("GET", "/readyz")[0] == 200
    assert server.request("GET", "/healthz")[0] == 200
    (registry,) = [p for p in descendants(server.process.pid) if " -m registry" in cmdline(p)]
    os.kill(registry, signal.SIGKILL)
    status, body, _ = until(lambda: (reply := server.request("GET", "/readyz", timeout=10))
                               and reply[0] == 503 and reply)
    assert b'"reachable":false' in body
    assert server.request("GET", "/healthz")[0] == 200
    assert scrape(server).get_value("corral_registry_up") == 0
    until(lambda: server.request("GET", "/readyz", timeout=10)[0] == 200, timeout=60)
    assert scrape(server).get_value("corral_registry_up") == 1
    assert server.get("/api/tags")["models"]
