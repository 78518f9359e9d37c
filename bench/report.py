"""The results document: machine and versions, one table per measurement, the targets.

Only medians with their min–max and ratios measured within one run are reported: this machine is
shared and noisy, so a single absolute time would mean little.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import targets
from bench.build import llama_cpp_commit, llama_cpp_python_version

SERVERS = ("corral", "llama-server", "llama-cpp-python")
MB = 1e6


@dataclass
class Run:
    """Everything one ``python -m bench`` measured, raw; sections hold a reason string when n/a."""

    mode: str
    command: str
    threads: int
    n_predict: int
    reps: int
    started: datetime.datetime = field(default_factory=datetime.datetime.now)
    models: dict[str, dict] = field(default_factory=dict)        # key -> label, size, path
    decode: dict[str, object] = field(default_factory=dict)      # key -> Samples | str
    ttft_same: dict[str, object] = field(default_factory=dict)
    ttft_fresh: dict[str, object] = field(default_factory=dict)
    cold: dict[str, dict[str, object]] = field(default_factory=dict)  # key -> server -> list|str
    streams: dict[str, object] = field(default_factory=dict)     # corral/batched -> {n: [..]}|str
    streams_model: str = ""
    latency: dict[str, object] = field(default_factory=dict)     # server -> Latency dict | str
    latency_plan: dict[str, object] = field(default_factory=dict)
    chat: dict[str, object] = field(default_factory=dict)        # server -> {turn: [..]} | str
    flood: object = None                                          # Flood dict | str
    profile: object = None                                        # {streams: profile.one} | str
    pull_floor: object = None                                     # {pull, floor, size} | str
    pull: dict[str, object] = field(default_factory=dict)        # key -> {pull,http,cp} | str
    rss: dict[str, dict[str, object]] = field(default_factory=dict)  # key -> process -> bytes|str
    imports: list[float] = field(default_factory=list)  # s to start Python + import grpc, llama_cpp
    errors: list[str] = field(default_factory=list)


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "?")
    mem = next((int(line.split()[1]) * 1024 for line in _lines("/proc/meminfo")
                if line.startswith("MemTotal:")), 0)
    return {"cpu": cpu, "cores": f"{len(os.sched_getaffinity(0))} usable of {os.cpu_count()}",
            "ram": f"{mem / 2**30:.1f} GiB", "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "kernel": platform.release(), "host": platform.node()}


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "llama-cpp-python": llama_cpp_python_version(),
            "llama.cpp": llama_cpp_commit(), "corral": importlib.metadata.version("corral")}


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def med(values: list[float], fmt: str = "{:.1f}", scale: float = 1.0) -> str:
    """``median (min–max)`` of ``values`` (each multiplied by ``scale``)."""
    if not values:
        return "n/a"
    vals = [v * scale for v in values]
    if len(vals) == 1:
        return fmt.format(vals[0])
    return (f"{fmt.format(statistics.median(vals))} "
            f"({fmt.format(min(vals))}–{fmt.format(max(vals))})")


def ratio(values: list[float]) -> str:
    """``median× (min–max)`` of per-round ratios."""
    return med(values, "{:.2f}").replace(" ", "× ", 1) if len(values) > 1 else med(values, "{:.2f}×")


def _na(value: object) -> str | None:
    return value if isinstance(value, str) else None


def header(run: Run) -> list[str]:
    m, v = machine(), versions()
    return [
        f"# Corral vs llama.cpp — {run.started:%Y-%m-%d %H:%M} on {m['host']} ({run.mode})", "",
        f"Command: `{run.command}`", "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Linux {m['kernel']}; "
        f"load average at the end {m['load']}",
        f"- Versions: Python {v['python']}, llama-cpp-python {v['llama-cpp-python']}, llama.cpp "
        f"{v['llama.cpp']} (built from that sdist's vendor/llama.cpp), corral {v['corral']}",
        f"- Settings: {run.threads} threads for every server, context 2048 per slot, "
        f"temperature 0, {run.n_predict}-token answers, {run.reps} alternating rounds; the raw "
        "prompt continues a counting list so no server stops early. Figures are median (min–max).",
        "- Servers: **corral** `/api/generate` (raw, stream); **llama-server** `/completion` "
        "(stream, ignore_eos); **llama-cpp-python** `python -m llama_cpp.server` "
        "`/v1/completions` (stream).", ""]


def decode_section(run: Run) -> list[str]:
    out = ["## 1. Streaming decode (tokens/s, client side: tokens after the first ÷ first→last "
           "token time)", "",
           "| model | server | decode t/s | ÷ llama-server (per round) | server's own t/s | "
           "tokens |", "|---|---|---|---|---|---|"]
    for key, samples in run.decode.items():
        label = run.models[key]["label"]
        if _na(samples):
            out.append(f"| {label} | all | n/a: {samples} | | | |")
            continue
        for name in SERVERS:
            vals = samples.values.get(name)
            if not vals:
                reason = samples.na.get(name, "not run")
                out.append(f"| {label} | {name} | n/a: {reason} | | | |")
                continue
            rel = "1" if name == "llama-server" else ratio(samples.ratios(name, "llama-server"))
            own = samples.extra.get(f"{name}:server", [])
            toks = samples.extra.get(f"{name}:tokens", [])
            out.append(f"| {label} | {name} | {med(vals)} | {rel} | {med(own)} | "
                       f"{med(toks, '{:.0f}')} |")
    return out + [""]


def ttft_section(run: Run) -> list[str]:
    out = ["## 2. Time to first token, warm model (ms)", "",
           "Same prompt each time (every server may reuse its cached prefix), and a new prompt "
           "each time (whole prompt evaluated).", "",
           "| model | server | same prompt | − llama-server | new prompt | − llama-server |",
           "|---|---|---|---|---|---|"]
    for key in run.ttft_same:
        label, same, fresh = run.models[key]["label"], run.ttft_same[key], run.ttft_fresh[key]
        if _na(same):
            out.append(f"| {label} | all | n/a: {same} | | | |")
            continue
        for name in SERVERS:
            if name not in same.values:
                out.append(f"| {label} | {name} | n/a: {same.na.get(name, 'not run')} | | | |")
                continue
            cells = []
            for s in (same, fresh):
                base = s.values.get("llama-server", [])
                diffs = [a - b for a, b in zip(s.values[name], base)]
                cells += [med(s.values[name], "{:.1f}", 1000),
                          "0" if name == "llama-server" else med(diffs, "{:+.1f}", 1000)]
            out.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return out + [""]


def cold_section(run: Run) -> list[str]:
    out = ["## 3. Cold start: request for an unloaded model until its first token (s)", "",
           "Corral: the gateway is up, the model is unloaded (keep_alive 0), so this is runner "
           "spawn + load + prompt. The others: process spawn + load + prompt (they have no "
           "unloaded state).", "", "| model | " + " | ".join(SERVERS) + " |",
           "|---|" + "---|" * len(SERVERS)]
    for key, per in run.cold.items():
        cells = [f"n/a: {per.get(n)}" if _na(per.get(n)) else med(per.get(n) or [], "{:.2f}")
                 for n in SERVERS]
        out.append(f"| {run.models[key]['label']} | " + " | ".join(cells) + " |")
    return out + [""]


def pull_section(run: Run) -> list[str]:
    out = ["## 5. Pull from a local docker-registry (MB/s, 1 MB = 10⁶ B)", "",
           "corral `/api/pull` (insecure, into an empty store) vs an HTTP GET of the same blobs "
           "from the same registry written to disk, and vs `shutil.copyfile` of the GGUF.", "",
           "| model | corral pull | HTTP copy | pull ÷ HTTP copy | file copy | pull ÷ file copy |",
           "|---|---|---|---|---|---|"]
    for key, res in run.pull.items():
        label = run.models[key]["label"]
        if _na(res):
            out.append(f"| {label} | n/a: {res} | | | | |")
            continue
        out.append(f"| {label} | {med(res['pull'], '{:.0f}', 1 / MB)} | "
                   f"{med(res['http'], '{:.0f}', 1 / MB)} | "
                   f"{ratio([p / h for p, h in zip(res['pull'], res['http'])])} | "
                   f"{med(res['cp'], '{:.0f}', 1 / MB)} | "
                   f"{ratio([p / c for p, c in zip(res['pull'], res['cp'])])} |")
    return out + [""]


def rss_section(run: Run) -> list[str]:
    out = ["## 6. Peak RSS (VmHWM, MB) vs the model file", "",
           "| model | file | corral runner | runner − file | llama-server | llama-cpp-python | "
           "corral gateway | corral registry |", "|---|---|---|---|---|---|---|---|"]
    for key, per in run.rss.items():
        size = run.models[key]["size"]

        def cell(name: str) -> str:
            v = per.get(name)
            return f"n/a: {v}" if isinstance(v, str) else ("n/a" if v is None else f"{v / MB:.0f}")

        runner = per.get("runner")
        extra = f"{(runner - size) / MB:+.0f}" if isinstance(runner, int) else "n/a"
        out.append(f"| {run.models[key]['label']} | {size / MB:.0f} | {cell('runner')} | {extra} | "
                   f"{cell('llama-server')} | {cell('llama-cpp-python')} | {cell('gateway')} | "
                   f"{cell('registry')} |")
    return out + ["", "Gateway and registry: peaks over the whole run (including the blob upload "
                  "that registered Gemma, when it ran).", ""]


def render(run: Run) -> str:
    from bench import report_load

    lines = header(run)
    for section in (decode_section, ttft_section, cold_section, report_load.streams_section,
                    pull_section, rss_section, *report_load.SECTIONS):
        lines += section(run)
    lines += targets.section(run)
    if run.errors:
        lines += ["## Errors", ""] + [f"- {e}" for e in run.errors] + [""]
    return "\n".join(lines)


def write(run: Run, out: Path | None) -> Path:
    if out is None:
        full = run.mode == "full"
        folder = Path(__file__).resolve().parent / ("results" if full else ".cache/results")
        suffix = "" if full else f"-{run.mode}"
        out = folder / f"{run.started:%Y-%m-%d}-{platform.node()}{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render(run)
    out.write_text(text)
    # The raw samples next to the table, for anyone who wants other statistics.
    raw = {**dataclasses.asdict(run), "machine": machine(), "versions": versions()}
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    sys.stdout.write(text + "\n")
    return out
