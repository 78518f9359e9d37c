"""The benchmark harness in smoke mode, for real: ``python -m bench --smoke`` against real servers.

CI has no cached llama.cpp build (building ``llama-server`` takes far longer than a test may), so
there the llama-server and llama-batched-bench columns read n/a and Corral is compared with
llama-cpp-python's own server only; where the tools are cached they are measured too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE_TOKENS = 16


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, str]:
    out = tmp_path_factory.mktemp("bench") / "smoke.md"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the harness stops every server it started
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail(f"bench --smoke ran over 420 s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    return stdout, json.loads(out.with_suffix(".json").read_text()), out.read_text()


def _is_rate(values: object) -> bool:
    return isinstance(values, list) and len(values) == 1 and values[0] > 0


@pytest.mark.e2e
@pytest.mark.timeout(480)
def test_smoke_measures_corral_and_llama_cpp_python_decode(smoke) -> None:
    _, raw, _ = smoke
    decode = raw["decode"]["smollm2"]
    assert _is_rate(decode["values"]["corral"])
    assert _is_rate(decode["values"]["llama-cpp-python"])
    # Every server streamed the whole answer: the counting prompt never reaches end-of-sequence.
    assert decode["extra"]["corral:tokens"] == [SMOKE_TOKENS]
    assert decode["extra"]["llama-cpp-python:tokens"] == [SMOKE_TOKENS]
    assert _is_rate(decode["extra"]["corral:server"])  # Corral's own eval_count / eval_duration
    if "llama-server" in decode["na"]:
        assert "not built" in decode["na"]["llama-server"]
    else:
        assert decode["extra"]["llama-server:tokens"] == [SMOKE_TOKENS]


@pytest.mark.e2e
@pytest.mark.timeout(480)
def test_smoke_measures_ttft_cold_start_streams_and_memory(smoke) -> None:
    _, raw, _ = smoke
    for section in ("ttft_same", "ttft_fresh"):
        assert _is_rate(raw[section]["smollm2"]["values"]["corral"])
    cold = raw["cold"]["smollm2"]
    assert _is_rate(cold["corral"]) and _is_rate(cold["llama-cpp-python"])
    assert _is_rate(raw["streams"]["corral"]["2"])
    rss = raw["rss"]["smollm2"]
    size = raw["models"]["smollm2"]["size"]
    assert rss["runner"] > size  # the runner maps the whole model
    assert 0 < rss["gateway"] < rss["runner"]
    assert rss["registry"] > 0 and rss["llama-cpp-python"] > size


@pytest.mark.e2e
@pytest.mark.timeout(480)
def test_smoke_pulls_from_docker_registry_when_installed(smoke) -> None:
    _, raw, _ = smoke
    result = raw["pull"]["smollm2"]
    if isinstance(result, str):
        assert "docker-registry is not installed" in result
        return
    assert all(_is_rate(result[k]) for k in ("pull", "http", "cp"))


@pytest.mark.e2e
@pytest.mark.timeout(480)
def test_smoke_prints_the_markdown_report_with_targets(smoke) -> None:
    stdout, _, text = smoke
    assert text in stdout
    assert text.startswith("# Corral vs llama.cpp")
    for heading in ("## 1. Streaming decode", "## 2. Time to first token", "## 3. Cold start",
                    "## 4. Concurrent streams", "## 5. Pull", "## 6. Peak RSS",
                    "## 7. Latency under load", "## 8. Multi-turn chat", "## 9. A thousand clients",
                    "## 10. Pull against the verification floor",
                    "## 11. Where a Corral step's time goes", "## Targets"):
        assert heading in text
    assert "llama-cpp-python 0.3" in text and "corral 0.1.0" in text
    assert "| cold start SmolLM2 | ≤ 1 s |" in text


@pytest.mark.e2e
@pytest.mark.timeout(480)
def test_smoke_runs_the_measurements_under_load(smoke) -> None:
    _, raw, _ = smoke
    flood = raw["flood"]
    assert flood["answered"] + flood["refused"] == flood["n"] == 24
    assert flood["lost"] == 0 and flood["other"] == {} and flood["gateway_hwm"] > 0
    chat = raw["chat"]["corral"]
    assert sorted(chat) == ["1", "2"] and all(len(v) == 2 for v in chat.values())
    # the second turn evaluates only what is new: the history comes from the slot's KV cache
    first, second = (max(f["evaluated"] for f in chat[t]) for t in ("1", "2"))
    assert second < first  # without reuse: the whole first turn again, plus the new one
    assert raw["latency"]["corral"]["failed"] == 0
    (step,) = raw["profile"].values()  # the runner's per-step timer at 2 streams
    assert step["streams"] == 2 and step["tokens"] > 0 and step["profile"]["steps"] > 0
    floor = raw["pull_floor"]
    if not isinstance(floor, str):
        assert _is_rate(floor["pull"]) and _is_rate(floor["floor"])
