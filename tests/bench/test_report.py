"""The harness's arithmetic and parsing, without servers: rates, llama-batched-bench's table,
medians with ranges, and the target lines a run produces."""

from __future__ import annotations

import pytest

from bench import report, targets
from bench.clients import Stream, aggregate_rate
from bench.scenarios import Samples, parse_batched_bench

BATCHED_OUTPUT = """
main: n_kv_max = 2368, n_batch = 2048, n_ubatch = 512, flash_attn = -1, is_pp_shared = 0

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    32 |    256 |    1 |    288 |    0.050 |   640.00 |    1.590 |   161.01 |    1.640 |   175.61 |
|    32 |    256 |    4 |   1152 |    0.200 |   640.00 |    5.020 |   203.98 |    5.220 |   220.69 |

llama_perf_context_print:        load time =      95.03 ms
"""


def test_parse_batched_bench_reads_s_tg_per_batch_size() -> None:
    assert parse_batched_bench(BATCHED_OUTPUT) == {1: 161.01, 4: 203.98}


def test_decode_rate_leaves_out_the_first_token() -> None:
    s = Stream(sent=0.0, first=0.5, last=2.5, events=201)
    assert s.ttft == 0.5
    assert s.decode_rate == pytest.approx(100.0)  # 200 tokens after the first in 2 s
    s.server_tokens = 101  # the server's own count wins over the events seen
    assert s.decode_rate == pytest.approx(50.0)
    assert Stream(sent=0.0, first=1.0, last=1.0, events=1).decode_rate is None


def test_aggregate_rate_spans_earliest_first_to_latest_last_token() -> None:
    streams = [Stream(sent=0, first=1.0, last=3.0, events=101),
               Stream(sent=0, first=1.5, last=5.0, events=101)]
    assert aggregate_rate(streams) == pytest.approx(200 / 4.0)


def test_median_with_range_and_ratios_per_round() -> None:
    assert report.med([3.0, 1.0, 2.0]) == "2.0 (1.0–3.0)"
    assert report.med([0.0123], "{:.1f}", 1000) == "12.3"
    assert report.med([]) == "n/a"
    samples = Samples(values={"corral": [90.0, 100.0], "llama-server": [100.0, 100.0]})
    assert samples.ratios("corral", "llama-server") == [0.9, 1.0]
    assert report.ratio(samples.ratios("corral", "llama-server")) == "0.95× (0.90–1.00)"


def _run() -> report.Run:
    run = report.Run("full", "python -m bench", 2, 256, 2)
    run.models = {"smollm2": {"label": "SmolLM2", "size": 100_000_000}}
    run.decode["smollm2"] = Samples(
        values={"corral": [90.0, 92.0], "llama-server": [100.0, 100.0]},
        extra={"corral:server": [95.0, 95.0], "llama-server:server": [101.0, 101.0]})
    run.ttft_same["smollm2"] = Samples(values={"corral": [0.012], "llama-server": [0.010]})
    run.ttft_fresh["smollm2"] = Samples(values={"corral": [0.052], "llama-server": [0.050]})
    run.cold["smollm2"] = {"corral": [2.0, 2.2], "corral:load": [1.5, 1.7], "llama-server": [0.4]}
    run.imports = [0.7]
    run.streams = {"corral": {1: [150.0], 4: [150.0]}, "llama-server": {1: [140.0], 4: [125.0]},
                   "batched": {1: [160.0], 4: [200.0]}}
    run.pull["smollm2"] = {"pull": [500e6], "http": [400e6], "cp": [2e9]}
    run.rss["smollm2"] = {"runner": 300_000_000, "llama-server": 180_000_000}
    return run


def test_targets_report_each_goal_and_explain_the_misses_with_this_runs_numbers() -> None:
    text = "\n".join(targets.section(_run()))
    assert "| decode SmolLM2 | ≥ 0.97 × llama-server | 0.91× | **missed** |" in text
    assert "| warm TTFT SmolLM2 | ≤ llama-server + 5 ms | +2.0 ms | met |" in text
    assert "| cold start SmolLM2 | ≤ 1 s | 2.10 s | **missed** |" in text
    assert ("| 4-stream aggregate vs llama-server -np 4 | ≥ 1.10× | 1.20× | met |" in text)
    assert ("| 4-stream aggregate vs llama-batched-bench | ≥ 0.95× S_TG | 0.75× | **missed** |"
            in text)
    assert "Corral 150 t/s, llama-batched-bench 200 t/s." in text
    assert "| pull SmolLM2 | ≥ 0.8 × HTTP copy | 1.25× | met |" in text
    assert "| runner RSS SmolLM2 | ≤ model + 150 MB | +200 MB | **missed** |" in text
    # 1000/91 − 1000/100 ≈ 0.99 ms/token in all, 1000/95 − 1000/101 ≈ 0.63 of it in the runner.
    assert "Corral spends 0.99 ms more per token than llama-server: 0.63 ms in the runner" in text
    assert ("takes 2.10 s, 1.60 s of it reported as load_duration (runner spawn + model load); a "
            "bare Python process importing what the runner imports (grpc, llama_cpp, ...) takes "
            "0.70 s; llama-server spawns, loads and answers in 0.40 s." in text)
    assert "about 120 MB is the Python interpreter" in text
    assert text.count("To close it") == 3


def test_render_marks_missing_servers_na_with_the_reason() -> None:
    run = _run()
    run.decode["smollm2"].values.pop("llama-server")
    run.decode["smollm2"].na["llama-server"] = "llama.cpp tools not built"
    text = report.decode_section(run)
    assert "| SmolLM2 | llama-server | n/a: llama.cpp tools not built | | | |" in text
    assert "| n/a: not run |" in "\n".join(text)  # llama-cpp-python was not in this run


def test_load_sections_and_targets() -> None:
    from bench import report_load, targets_load

    run = _run()
    run.latency = {"corral": {"completed": 120, "failed": 0, "ttft": [0.1, 0.2, 1.0],
                              "tpot": [0.02, 0.03], "seconds": 60.0},
                   "llama-server": {"completed": 100, "failed": 1, "ttft": [0.1, 0.2, 0.8],
                                    "tpot": [0.02, 0.04], "seconds": 60.0}}
    run.latency_plan = {"clients": 64, "slots": 8}
    run.chat = {"corral": {1: [{"ms": 50.0, "evaluated": 40}], 2: [{"ms": 10.0, "evaluated": 20}],
                           3: [{"ms": 12.0, "evaluated": 22}]},
                "llama-server": "llama.cpp tools not built"}
    run.flood = {"n": 1000, "answered": 516, "refused": 484, "other": {}, "lost": 0,
                 "refusal_seconds": [0.1] * 484, "answer_seconds": [5.0] * 516, "seconds": 40.0,
                 "queue": {"wait_p99_ms": 3000.0}, "gateway_hwm": 120_000_000}
    run.pull_floor = {"pull": [900e6], "floor": [1000e6], "size": [1.1e9]}
    text = "\n".join(report.render(run).splitlines())
    assert "| 4 | 150.0 | 125.0 | 1.20× | 200.0 | 0.75× |" in text
    assert "| corral | 64 | 8 | 60 | 120 | 0 | 200.0 | 1000.0 | 20.0 | 30.0 |" in text
    assert "| 3 | 12.0 | 22 | n/a: llama.cpp tools not built |  |" in text
    assert "| 1000 | 516 | 484 | 0  | 0 | 100 | 5.00 | 3000.0 | 120 |" in text
    assert "| 1.10 | 900 | 1000 | 0.90× |" in text
    rows = {r[0]: r for check in targets_load.CHECKS for r in check(run)}
    assert rows["closed loop: completed requests"][2:4] == ("1.20×", True)
    assert rows["closed loop: TTFT p99"][2:4] == ("1.25×", False)
    assert rows["multi-turn chat: turn-N prompt eval flat"][2:4] == ("1.20×", True)
    assert rows["thousand clients: none lost, no other errors"][3]
    assert rows["thousand clients: refused at once"][2:4] == ("100 ms vs 5000 ms", True)
    assert rows["thousand clients: queue wait p99 reported"][2:4] == ("3000 ms", True)
    assert rows["thousand clients: gateway RSS"][2:4] == ("120 MB", True)
    assert rows["pull vs verification floor (≥ 1 GB)"][2:4] == ("0.90×", True)
    assert report_load.SECTIONS


def test_the_stream_targets_cite_this_runs_profile() -> None:
    from bench import report_load

    run = _run()
    step = {"steps": 100, "tokens": 396, "step_us": 36100.0,
            "phases": {p: {"share": 0.982 if p == "decode" else 0.003, "us_per_step": 10.0}
                       for p in ("admit", "batch", "decode", "sample", "text", "flush")}}
    run.profile = {4: {"streams": 4, "tokens": 512, "rate": 113.5, "profile": step,
                       "cpu_ms_per_1000": {"runner inference + ggml": 17783e3,
                                           "runner event loop + gRPC": 116e3,
                                           "gateway": 172e3, "client": 78e3}}}
    text = "\n".join(report.render(run).splitlines())
    assert "## 11. Where a Corral step's time goes" in text
    assert "| 4 | 3.96 | 36.1 | 0.3% (10) | 0.3% (10) | 98.2% (10) |" in text
    assert "| 4 | 113.5 | 17783 | 116 | 172 | 78 |" in text
    assert ("Measured at 4 streams (114 t/s): llama_decode was 98.2% of a runner step (36.1 ms "
            "for 3.96 tokens), and per token the inference thread with ggml's workers used "
            "17783 µs of CPU while the rest used 366 µs (runner event loop + gRPC 116 µs, "
            "gateway 172 µs, client 78 µs)") in text
    run.profile = "error (RuntimeError)"
    assert "n/a: error (RuntimeError)" in "\n".join(report_load.profile_section(run))
