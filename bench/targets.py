"""The targets Corral holds itself to, checked against one run (tracked, never asserted).

Each missed target gets a line saying why, computed from the same run's numbers (where the time or
memory goes), and what would close the gap.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

MB = 1e6



DECODE_REMEDY = (
    "The runner already samples with llama.cpp's C sampler chain into one reused llama_batch,"
    ' so what remains is Python work per step (several ctypes calls, the stop-string/UTF-8 '
    'check, the hop to asyncio). To close it: run the decode-sample-detokenize step in one '
    'native call per step (a small C helper built against the same llama.cpp), and send '
    'several tokens per gRPC message / HTTP chunk when they are ready together. Tried and '
    'rejected: handing the per-token wake-up of the event loop to a relay thread so it would '
    'overlap llama_decode made decoding ~15% slower, because ggml\'s threads use every core '
    'and spin at barriers; per-token work must stay between decodes.'
)
PULL_REMEDY = (
    'the HTTP copy neither hashes nor syncs, while a pull hashes every byte (sha256 runs at '
    'about 1.7 GB/s here, on the same 2 cores that receive and write), fsyncs the blob before '
    'it enters the store, and reads the GGUF header for the model facts; at these sizes its '
    'fixed steps (manifest and config requests, space reservation, the database transaction) '
    'weigh as much as the transfer. Hashing already overlaps receiving (a running hash over '
    'the contiguous prefix, one write in flight per part). To close more of it: hash on a '
    'core the receive loop does not use (multi-core machines), start writeback early, and '
    'measure with a multi-GB model where fixed costs amortise. 0.8x an unverified copy is out '
    'of reach on 2 cores while every byte is verified.'
)

def _median(values) -> float | None:
    return statistics.median(values) if values else None


def _samples(value):
    return None if isinstance(value, str) or value is None else value


def _row(name: str, goal: str, value: float | None, shown: str, meets: Callable[[float], bool],
         why: str) -> tuple:
    """A target's row: ``value`` as ``shown`` formats it and whether it ``meets`` the goal, or
    n/a (None, not met) when the run did not measure it."""
    if value is None:
        return (name, goal, None, False, why)
    return (name, goal, shown.format(value), meets(value), why)


def _ratio_row(name: str, ratio: float | None, floor: float, baseline: str, why: str) -> tuple:
    """A "≥ floor × baseline" target."""
    return _row(name, f"≥ {floor} × {baseline}", ratio, "{:.2f}×", lambda r: r >= floor, why)


def decode(run) -> list[tuple]:
    rows = []
    for key, s in run.decode.items():
        s = _samples(s)
        r = _median(s.ratios("corral", "llama-server")) if s else None
        why = ""
        if r is not None and r < 0.97:
            c, lc = _median(s.values["corral"]), _median(s.values["llama-server"])
            own, lown = (_median(s.extra.get(f"{n}:server", [])) for n in ("corral", "llama-server"))
            gap = 1000 / c - 1000 / lc
            why = f"Corral spends {gap:.2f} ms more per token than llama-server"
            if own and lown:
                runner = 1000 / own - 1000 / lown
                why += (f": {runner:.2f} ms in the runner (its own eval rate {own:.0f} t/s vs "
                        f"llama-server's {lown:.0f}: the per-token Python loop around llama_decode "
                        f"— batch fill, sampling, detokenising, one ctypes call each) and "
                        f"{gap - runner:.2f} ms between the runner and the client (a gRPC message "
                        "and an NDJSON line per token through the gateway)")
            why += (". " + DECODE_REMEDY)
        rows.append(_ratio_row(f"decode {run.models[key]['label']}", r, 0.97, "llama-server", why))
    return rows


def ttft(run) -> list[tuple]:
    rows = []
    for key, same in run.ttft_same.items():
        same, fresh = _samples(same), _samples(run.ttft_fresh.get(key))
        diff = None
        if same and "corral" in same.values and "llama-server" in same.values:
            diff = 1000 * (_median(same.values["corral"]) - _median(same.values["llama-server"]))
        why = ""
        if diff is not None and diff > 5:
            fdiff = 1000 * (_median(fresh.values["corral"]) - _median(fresh.values["llama-server"]))
            why = (f"Corral's first token is {diff:.1f} ms behind with a cached prompt and "
                   f"{fdiff:.1f} ms with a new one, so the gap is per-request overhead rather than "
                   "prompt evaluation: HTTP parsing, the registry round trip (ResolveModel over "
                   "gRPC, answered from the registry's cache), the scheduler, and the runner's "
                   "gRPC hop with its tokenisation in a worker thread. To close it: cache "
                   "resolved models in the gateway too (invalidated by a registry change feed) "
                   "and tokenise on the inference thread between steps.")
        rows.append(_row(f"warm TTFT {run.models[key]['label']}", "≤ llama-server + 5 ms", diff,
                         "{:+.1f} ms", lambda d: d <= 5, why))
    return rows


def cold(run) -> list[tuple]:
    per = run.cold.get("smollm2", {})
    vals = per.get("corral")
    c = _median(vals) if isinstance(vals, list) else None
    why = ""
    if c is not None and c > 1.0:
        imports, ls = _median(run.imports), per.get("llama-server")
        why = f"Corral's cold first token takes {c:.2f} s"
        load = _median(per.get("corral:load") or [])
        if load:
            why += f", {load:.2f} s of it reported as load_duration (runner spawn + model load)"
        if imports:
            why += (f"; a bare Python process importing what the runner imports (grpc, "
                    f"llama_cpp, ...) takes {imports:.2f} s")
        if isinstance(ls, list) and ls:
            lsm = _median(ls)
            why += f"; llama-server spawns, loads and answers in {lsm:.2f} s"
            if lsm > 0.5:
                why += " (so this machine was slow or busy during the run)"
        why += (". To close it: keep one pre-started runner process that has already imported "
                "everything (a fork server) so a load is only the model mmap + context creation.")
    return [_row("cold start SmolLM2", "≤ 1 s", c, "{:.2f} s", lambda s: s <= 1.0, why)]


def pull(run) -> list[tuple]:
    rows = []
    for key, res in run.pull.items():
        r = None
        why = ""
        if isinstance(res, dict) and res["pull"] and res["http"]:
            r = _median([p / h for p, h in zip(res["pull"], res["http"])])
            if r < 0.8:
                why = (f"Corral pulls at {_median(res['pull']) / MB:.0f} MB/s where a plain HTTP "
                       f"copy of the same blobs from the same registry runs at "
                       f"{_median(res['http']) / MB:.0f} MB/s: " + PULL_REMEDY)
        rows.append(_ratio_row(f"pull {run.models[key]['label']}", r, 0.8, "HTTP copy", why))
    return rows


def rss(run) -> list[tuple]:
    rows = []
    for key, per in run.rss.items():
        runner, size = per.get("runner"), run.models[key]["size"]
        extra = (runner - size) / MB if isinstance(runner, int) else None
        why = ""
        if extra is not None and extra > 150:
            why = f"The runner peaks {extra:.0f} MB above the file"
            ls = per.get("llama-server")
            if isinstance(ls, int):
                why += (f"; llama-server with the same model and context peaks "
                        f"{(ls - size) / MB:.0f} MB above it (KV cache and compute buffers), so "
                        f"about {(runner - ls) / MB:.0f} MB is the Python interpreter with grpc, "
                        "protobuf and llama-cpp-python")
            why += (". The runner already loads only llama-cpp-python's C bindings (no numpy or "
                    "jinja2). To close it: size the compute buffers to the request "
                    "(smaller n_batch / n_ubatch) and quantise the KV cache.")
        rows.append(_row(f"runner RSS {run.models[key]['label']}", "≤ model + 150 MB", extra,
                         "{:+.0f} MB", lambda mb: mb <= 150, why))
    return rows


def _load_checks() -> tuple[Callable, ...]:
    from bench import targets_load
    return targets_load.CHECKS


CHECKS: tuple[Callable, ...] = (decode, ttft, cold, pull, rss)


def section(run) -> list[str]:
    out = ["## Targets", "", "| target | goal | this run | |", "|---|---|---|---|"]
    missed = []
    for check in (*CHECKS, *_load_checks()):
        for name, goal, value, ok, why in check(run):
            status = "n/a" if value is None else ("met" if ok else "**missed**")
            out.append(f"| {name} | {goal} | {value or 'n/a'} | {status} |")
            if value is not None and not ok:
                missed.append(f"- **{name}**: {why}")
    if missed:
        out += ["", "### Why the missed targets miss, and what would close them", "", *missed]
    return out + [""]
