"""``python -m bench --profile``: where a Corral step's time goes, and the CPU each process uses.

For each number of streams, a fresh Corral (``OLLAMA_NUM_PARALLEL`` = streams,
``CORRAL_PROFILE_STEPS=1``) serves that many concurrent streams. Reported:

* the runner's per-step timer (``runner/steptimer.py``): each phase's share of a step and its
  microseconds per step — admitting requests, filling the batch, ``llama_decode``, sampling,
  detokenising and stop checks (``text``), handing the step's output to the event loop;
* CPU time per 1000 tokens (``/proc/<pid>/task/*/schedstat``) of the runner's inference thread
  with ggml's workers, the runner's event loop and gRPC threads, the gateway, and the client.

Both are meaningful on a busy machine: shares and CPU time, unlike wall-clock rates, do not
count the time a thread waited for a core (CPU time does include ggml's spinning at barriers).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bench.clients import CorralTarget, aggregate_rate, concurrent
from bench.scenarios import PROMPT
from bench.servers import Corral, corral_pids

PHASES = ("admit", "batch", "decode", "sample", "text", "flush")  # "image": vision runners only


def thread_cpu(pid: int) -> dict[str, int]:
    """CPU nanoseconds per thread name of ``pid`` (threads that share a name are summed)."""
    out: dict[str, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[name] = out.get(name, 0) + ns
    return out


def _cpu_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def _process_cpu() -> int:
    return int(sum(os.times()[:2]) * 1e9)


def one(scratch: Path, logs: Path, n: int, n_predict: int, threads: int,
        cpu_sampling: bool = False, **env: str) -> dict:
    """Profile ``n`` streams of ``n_predict`` tokens on a fresh Corral (``env``: more settings)."""
    server = Corral(scratch / "models", logs / f"profile-np{n}.log", OLLAMA_NUM_PARALLEL=str(n),
                    CORRAL_PROFILE_STEPS="1", CORRAL_NUM_THREADS=str(threads),
                    CORRAL_CPU_SAMPLING="1" if cpu_sampling else "0", **env).start()
    try:
        target = CorralTarget(server.url, "smollm2:135m")
        target.stream(f"[w] {PROMPT}", 4)
        pids = corral_pids(server)
        runner, gateway = pids["runner"][0], pids["gateway"][0]
        mark = len(_profiles(server.log_path))
        before = {"runner": thread_cpu(runner), "gateway": thread_cpu(gateway),
                  "client": _process_cpu()}
        streams = concurrent(target, [f"[{i}] {PROMPT}" for i in range(n)], n_predict)
        after = {"runner": thread_cpu(runner), "gateway": thread_cpu(gateway),
                 "client": _process_cpu()}
        deadline = time.monotonic() + 10
        while len(_profiles(server.log_path)) <= mark and time.monotonic() < deadline:
            time.sleep(0.1)  # the runner reports once it is idle again
        profiles = _profiles(server.log_path)[mark:]
    finally:
        server.stop()
    tokens = sum(s.tokens for s in streams)
    runner_cpu = _cpu_delta(before["runner"], after["runner"])
    return {"streams": n, "tokens": tokens, "rate": aggregate_rate(streams),
            "profile": max(profiles, key=lambda p: p["steps"]) if profiles else None,
            "cpu_ms_per_1000": {
                "runner inference + ggml": runner_cpu.get("inference", 0) / tokens,
                "runner event loop + gRPC": sum(v for k, v in runner_cpu.items()
                                                if k != "inference") / tokens,
                "gateway": sum(_cpu_delta(before["gateway"], after["gateway"]).values()) / tokens,
                "client": (after["client"] - before["client"]) / tokens}}


def _profiles(log_path: Path) -> list[dict]:
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"step_profile"' in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


def render(results: list[dict], n_predict: int, threads: int) -> str:
    """The two tables as markdown."""
    lines = [f"# Corral per-step profile — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"SmolLM2-135M Q4_1, {threads} threads, {n_predict}-token answers, streams released "
             "together on a fresh server per row. Load average now: "
             + " ".join(f"{x:.2f}" for x in os.getloadavg()), ""]
    return "\n".join(lines + tables(results, "##")) + "\n"


def tables(results: list[dict], level: str = "###") -> list[str]:
    """The step-phase table and the CPU-per-process table, as markdown lines."""
    lines = [f"{level} Runner step phases (share of the step, µs per step)", "",
             "| streams | tokens/step | step ms | " + " | ".join(PHASES) + " |",
             "|---|---|---|" + "---|" * len(PHASES)]
    for r in results:
        p = r["profile"]
        if not p:
            lines.append(f"| {r['streams']} | n/a: no step_profile logged |" + " |" * 7)
            continue
        cells = [f"{p['phases'][ph]['share'] * 100:.1f}% ({p['phases'][ph]['us_per_step']:.0f})"
                 for ph in PHASES]
        lines.append(f"| {r['streams']} | {p['tokens'] / max(p['steps'], 1):.2f} | "
                     f"{p['step_us'] / 1000:.1f} | " + " | ".join(cells) + " |")
    names = list(results[0]["cpu_ms_per_1000"]) if results else []
    lines += ["", f"{level} CPU per 1000 tokens (ms)", "",
              "| streams | aggregate t/s | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    for r in results:
        cells = [f"{r['cpu_ms_per_1000'][k] / 1e3:.0f}" for k in names]
        lines.append(f"| {r['streams']} | {r['rate']:.1f} | " + " | ".join(cells) + " |")
    return lines + [""]


def overhead(result: dict) -> str:
    """One sentence from a profile result: how much of a step is llama_decode and what the
    CPU outside the decoding thread costs per token (the measured part of a throughput miss)."""
    p = result.get("profile")
    us = {k: v / 1e3 for k, v in result["cpu_ms_per_1000"].items()}  # ns/token -> µs/token
    decode = us.pop("runner inference + ggml")
    share = (f"llama_decode was {p['phases']['decode']['share'] * 100:.1f}% of a runner step "
             f"({p['step_us'] / 1000:.1f} ms for {p['tokens'] / max(p['steps'], 1):.2f} tokens), "
             if p else "")
    spent = ", ".join(f"{k} {v:.0f} µs" for k, v in us.items())
    return (f"Measured at {result['streams']} streams ({result['rate']:.0f} t/s): {share}"
            f"and per token the inference thread with ggml's workers used {decode:.0f} µs of CPU "
            f"while the rest used {sum(us.values()):.0f} µs ({spent}), on the same cores.")
