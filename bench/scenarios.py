"""The measurements: streaming decode, warm time to first token, cold start, concurrent streams.

Each function takes running servers (or the means to start them), repeats its measurement with the
servers alternating, and returns raw samples; ``report`` turns them into medians and ratios.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.clients import CorralTarget, Target, aggregate_rate, concurrent
from bench.servers import Corral, LlamaCppPythonServer, LlamaServer, corral_pids

# Continuing a counting list never reaches end-of-sequence, so every server streams the full
# answer even where the API has no ignore_eos (Corral, llama-cpp-python).
PROMPT = "Here are the numbers from 1 to 1000, separated by commas: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
TTFT_TOKENS = 2


@dataclass
class Samples:
    """Raw samples per server name (and per pair, for ratios measured in the same round)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, list[float]] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)  # server -> why it has no samples

    def add(self, name: str, value: float | None, bucket: str = "values") -> None:
        if value is not None:
            getattr(self, bucket).setdefault(name, []).append(value)

    def ratios(self, name: str, base: str) -> list[float]:
        """Per-round ratios ``name / base`` (rounds where both produced a value)."""
        return [a / b for a, b in zip(self.values.get(name, []), self.values.get(base, [])) if b]


def rotate(targets: list[Target], i: int) -> list[Target]:
    """Round ``i``'s order: each server goes first in turn, so none always runs on a cold cache."""
    k = i % len(targets)
    return targets[k:] + targets[:k]


def decode(targets: list[Target], reps: int, n_predict: int, log: Callable) -> Samples:
    """Streaming decode tokens/s (client side) per round; Corral's own eval rate in ``extra``."""
    out = Samples()
    for t in targets:  # warm-up: load, fill caches, first-request allocations
        t.stream(PROMPT, 4)
    for i in range(reps):
        for t in rotate(targets, i):
            s = t.stream(PROMPT, n_predict)
            out.add(t.name, s.decode_rate)
            out.add(f"{t.name}:tokens", s.tokens, "extra")
            out.add(f"{t.name}:server", s.server_rate, "extra")
        log(f"  decode round {i + 1}/{reps}: " + ", ".join(
            f"{n} {v[-1]:.1f} t/s" for n, v in out.values.items()))
    return out


def ttft(targets: list[Target], reps: int) -> tuple[Samples, Samples]:
    """Time to first token on a warm model: the same prompt (cached prefix) and a new prompt."""
    same, fresh = Samples(), Samples()
    for i in range(reps):
        for t in rotate(targets, i):
            same.add(t.name, t.stream(PROMPT, TTFT_TOKENS).ttft)
            s = t.stream(f"[{time.time_ns()}] {PROMPT}", TTFT_TOKENS)
            fresh.add(t.name, s.ttft)
            fresh.add(f"{t.name}:prompt_tokens", s.prompt_tokens, "extra")
    return same, fresh


def corral_cold(target: CorralTarget, server: Corral, reps: int,
                loads: list[float]) -> list[float]:
    """Seconds from request to first token with the model unloaded (runner spawn + load);
    Corral's own ``load_duration`` of each is appended to ``loads``."""
    times = []
    for _ in range(reps):
        target.unload()
        deadline = time.monotonic() + 60
        while (server.get("/api/ps")["models"] or corral_pids(server)["runner"]) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # let the exited runner's pages go before timing the next spawn
        stream = target.stream(PROMPT, TTFT_TOKENS)
        times.append(stream.ttft)
        loads.append(stream.load)
    return times


def process_cold(start: Callable[[], LlamaServer | LlamaCppPythonServer],
                 make_target: Callable[[str], Target], reps: int) -> list[float]:
    """Seconds from spawning a fresh server process until its first token."""
    times = []
    for _ in range(reps):
        spawned = time.perf_counter()
        proc = start()
        try:
            stream = make_target(proc.url).stream(PROMPT, TTFT_TOKENS)
            times.append(stream.first - spawned)
        finally:
            proc.stop()
    return times


def server_streams(start: Callable[[], Corral | LlamaServer], make_target: Callable[[str], Target],
                   n: int, reps: int, n_predict: int) -> tuple[list[float], int | None]:
    """Aggregate decode tokens/s of ``n`` concurrent streams on a fresh server started for ``n``
    slots (Corral with ``OLLAMA_NUM_PARALLEL=n``, ``llama-server -np n``); also the prompt
    length in tokens (for llama-batched-bench)."""
    server = start()
    try:
        target = make_target(server.url)
        warm = target.stream(f"[w.0] {PROMPT}", 4)  # same shape as the measured prompts
        rates = []
        for r in range(reps):
            prompts = [f"[{r}.{i}] {PROMPT}" for i in range(n)]
            rates.append(aggregate_rate(concurrent(target, prompts, n_predict)))
        return rates, warm.prompt_tokens
    finally:
        server.stop()


def batched_bench(binary: Path, model: Path, batches: list[int], prompt_tokens: int,
                  n_predict: int, threads: int, log_path: Path) -> dict[int, float]:
    """llama-batched-bench's aggregate generation rate (S_TG t/s) per batch size."""
    ctx = max(batches) * (prompt_tokens + n_predict) + 64
    argv = [str(binary), "-m", str(model), "-c", str(ctx), "-b", "2048", "-ub", "512",
            "-npp", str(prompt_tokens), "-ntg", str(n_predict),
            "-npl", ",".join(map(str, batches)), "-t", str(threads), "-tb", str(threads)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    log_path.write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"llama-batched-bench failed ({done.returncode}): {done.stderr[-500:]}")
    return parse_batched_bench(done.stdout + done.stderr)


def parse_batched_bench(text: str) -> dict[int, float]:
    """``{B: S_TG}`` from the markdown table llama-batched-bench prints."""
    rows: dict[int, float] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "B" in cells and "S_TG t/s" in cells:
            header = cells
        elif header and re.fullmatch(r"\d+", cells[0] or ""):
            row = dict(zip(header, cells))
            rows[int(row["B"])] = float(row["S_TG t/s"])
    return rows
