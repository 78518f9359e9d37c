"""A real Prometheus (Debian's ``prometheus``) scrapes a real ``corral serve`` with the scrape
config the repo ships; Corral's token counter is read back through PromQL, and every query of
the shipped Grafana dashboard is one Prometheus accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.server import CorralServer, free_port, terminate
from tests.polling import until

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "corral-dashboard.json"
MODEL = "smollm2:135m"


def binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        if os.environ.get("CORRAL_STACK_STRICT"):
            pytest.fail(f"{name} is missing (apt-get install prometheus)")
        pytest.skip(f"Debian's {name} is not installed (scripts/test.sh installs prometheus)")
    return found


def test_the_shipped_scrape_config_is_valid():
    result = subprocess.run([binary("promtool"), "check", "config", str(SCRAPE_CONFIG)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def corral(tmp_path: Path) -> Iterator[CorralServer]:
    server = CorralServer(tmp_path / "models", tmp_path / "serve.log").start()
    yield server
    server.stop()


@pytest.fixture
def prometheus(tmp_path: Path, corral: CorralServer) -> Iterator[str]:
    """Prometheus on a free port, scraping ``corral`` every second with deploy/prometheus.yml."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{corral.port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen(
        [binary("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((tmp_path / "prometheus.log").read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        terminate(process, 10)
        log.close()


def query(prometheus: str, promql: str) -> dict:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        reply = json.loads(response.read())
    assert reply["status"] == "success", reply
    return reply["data"]


def scalar(prometheus: str, promql: str) -> float | None:
    result = query(prometheus, promql)["result"]
    return float(result[0]["value"][1]) if result else None




def test_prometheus_reads_corrals_token_counter(corral, prometheus):
    until(lambda: scalar(prometheus, 'up{job="corral"}') == 1, 60, 0.5, what="Prometheus scraping corral")
    generated = 0
    for prompt in ("Name a colour.", "Name a fruit."):
        status, body = corral.post("/api/generate", {
            "model": MODEL, "prompt": prompt, "stream": False,
            "options": {"temperature": 0, "num_predict": 5}})
        assert status == 200, body
        generated += body["eval_count"]
    promql = f'sum(corral_generated_tokens_total{{job="corral", model="{MODEL}"}})'
    until(lambda: scalar(prometheus, promql) == generated, 60, 0.5, what="Prometheus seeing the tokens")
    assert scalar(prometheus, 'sum(corral_http_requests_total{route="/api/generate"})') == 2
    assert scalar(prometheus, "corral_models_loaded") == 1
    assert scalar(prometheus, "corral_registry_up") == 1


def test_every_dashboard_query_is_valid_promql(corral, prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Tokens per second", "Time to first token", "Queue depth and active requests",
            "Loaded models", "Runner restarts and crashes"} <= titles
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            promql = (target["expr"].replace("$__rate_interval", "1m")
                      .replace("$__range", "1h"))
            query(prometheus, promql)  # status "success": it parses and evaluates
