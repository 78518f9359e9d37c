"""Report sections of the measurements under load (``bench/measures.py``): concurrent streams
against llama-server and llama-batched-bench, the closed loop, multi-turn chat, a thousand
connections, pull against the verification floor, and Corral's per-step profile."""

from __future__ import annotations

import statistics

from bench import profile
from bench.load import percentile
from bench.report import MB, med, ratio

SERVERS = ("corral", "llama-server")


def _na(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _cell(value: object) -> str:
    return f"n/a: {value}" if isinstance(value, str) else med(value or [])


def streams_section(run) -> list[str]:
    label = run.models.get(run.streams_model, {}).get("label", "?")
    out = [f"## 4. Concurrent streams: aggregate decode t/s ({label})", "",
           "Corral with `OLLAMA_NUM_PARALLEL` = N and `llama-server -np N` (fresh server each, "
           "same threads and per-slot context), N streams released together over HTTP, tokens "
           "after each stream's first ÷ (last token − first first token), client side for both; "
           "llama-batched-bench's S_TG at batch N, same prompt and answer length. Ratios are "
           "of medians.", "",
           "| streams | corral | llama-server | corral ÷ llama-server | llama-batched-bench | "
           "corral ÷ batched |", "|---|---|---|---|---|---|"]
    per = {name: run.streams.get(key) for name, key in
           (("corral", "corral"), ("llama-server", "llama-server"), ("batched", "batched"))}
    ns = sorted({n for v in per.values() if isinstance(v, dict) for n in v})
    if not ns:
        return out + [f"| all | {_cell(per['corral'])} | {_cell(per['llama-server'])} | | "
                      f"{_cell(per['batched'])} | |", ""]
    for n in ns:
        vals = {k: (v.get(n, "not run") if isinstance(v, dict) else v) for k, v in per.items()}
        out.append(f"| {n} | {_cell(vals['corral'])} | {_cell(vals['llama-server'])} | "
                   f"{_rel(vals['corral'], vals['llama-server'])} | {_cell(vals['batched'])} | "
                   f"{_rel(vals['corral'], vals['batched'])} |")
    return out + [""]


def _rel(a: object, b: object) -> str:
    if not (isinstance(a, list) and isinstance(b, list) and a and b):
        return "n/a"
    base = statistics.median(b)
    return ratio([x / base for x in a])


def latency_section(run) -> list[str]:
    out = ["## 7. Latency under load: closed loop", "",
           "Each client sends its next request when the last one ends, for a fixed time; prompts "
           "of mixed lengths (about 30 to 1000 tokens), the same answer length, both servers with "
           "the same number of slots. Completed = requests that finished inside the window. "
           "TPOT = (last token − first token) ÷ (tokens − 1) per request.", "",
           "| server | clients | slots | seconds | completed | failed | TTFT p50 ms | "
           "TTFT p99 ms | TPOT p50 ms | TPOT p99 ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    plan = getattr(run, "latency_plan", {})
    for name in SERVERS:
        res = run.latency.get(name, "not run")
        if _na(res):
            out.append(f"| {name} | n/a: {res} |" + " |" * 8)
            continue
        def ms(values: list[float], q: float) -> str:
            v = percentile(values, q)
            return "n/a" if v is None else f"{v * 1000:.1f}"
        out.append(f"| {name} | {plan.get('clients', '?')} | {plan.get('slots', '?')} | "
                   f"{res['seconds']:.0f} | {res['completed']} | {res['failed']} | "
                   f"{ms(res['ttft'], 0.5)} | {ms(res['ttft'], 0.99)} | {ms(res['tpot'], 0.5)} | "
                   f"{ms(res['tpot'], 0.99)} |")
    return out + [""]


def chat_section(run) -> list[str]:
    out = ["## 8. Multi-turn chat: prompt evaluation per turn", "",
           "Conversations side by side, one slot each, every turn sent with the whole history; "
           "the servers' own prompt-eval time and prompt tokens evaluated (median over the "
           "conversations). Flat means the earlier turns came from the KV cache.", "",
           "| turn | corral ms | corral tokens evaluated | llama-server ms | "
           "llama-server tokens evaluated |", "|---|---|---|---|---|"]
    res = {name: run.chat.get(name, "not run") for name in SERVERS}
    turns = sorted({int(t) for v in res.values() if isinstance(v, dict) for t in v})
    if not turns:
        return out + [f"| all | n/a: {res['corral']} | | n/a: {res['llama-server']} | |", ""]
    for t in turns:
        cells = []
        for name in SERVERS:
            v = res[name]
            if isinstance(v, str):
                cells += [f"n/a: {v}", ""]
                continue
            figures = v.get(t) or v.get(str(t)) or []
            cells += [med([f["ms"] for f in figures if f["ms"] is not None]),
                      med([f["evaluated"] for f in figures if f["evaluated"] is not None],
                          "{:.0f}")]
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    return out + [""]


def flood_section(run) -> list[str]:
    out = ["## 9. A thousand clients", "",
           "Connections opened together against one Corral (`OLLAMA_MAX_QUEUE` default 512), "
           "each asking for a short answer: answered, refused with 503 (queue full), anything "
           "else, and lost (no answer before the timeout).", ""]
    res = run.flood
    if _na(res) or not res:
        return out + [f"n/a: {res or 'not run'}", ""]
    q = res.get("queue", {})
    refusals = [s * 1000 for s in res["refusal_seconds"]]
    out += ["| connections | answered | refused (503) | other | lost | refusal p99 ms | "
            "answer p50 s | queue wait p99 ms | gateway peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {res['n']} | {res['answered']} | {res['refused']} | "
            f"{sum(res['other'].values())} {res['other'] or ''} | {res['lost']} | "
            f"{percentile(refusals, 0.99) or 0:.0f} | "
            f"{statistics.median(res['answer_seconds']) if res['answer_seconds'] else 0:.2f} | "
            f"{q.get('wait_p99_ms', 'n/a')} | "
            f"{(res['gateway_hwm'] or 0) / MB:.0f} |", ""]
    return out


def floor_section(run) -> list[str]:
    out = ["## 10. Pull against the verification floor (MB/s)", "",
           "A synthetic GGUF (valid header, one tensor of random filler) pushed to the local "
           "docker-registry; Corral pulls it into an empty store. The floor is what any verifying "
           "downloader must do: HTTP GET of the same blobs to disk, then `sha256sum` of them.", ""]
    res = run.pull_floor
    if _na(res) or not res:
        return out + [f"n/a: {res or 'not run'}", ""]
    size = res["size"][0]
    return out + ["| size GB | corral pull | floor (copy + sha256sum) | pull ÷ floor |",
                  "|---|---|---|---|",
                  f"| {size / 1e9:.2f} | {med(res['pull'], '{:.0f}', 1 / MB)} | "
                  f"{med(res['floor'], '{:.0f}', 1 / MB)} | "
                  f"{ratio([p / f for p, f in zip(res['pull'], res['floor'])])} |", ""]


def profile_section(run) -> list[str]:
    out = ["## 11. Where a Corral step's time goes", "",
           "Corral alone at some of the stream counts of section 4 (a fresh server per row, "
           "`CORRAL_PROFILE_STEPS=1`): the runner's per-step timer, and the CPU each process "
           "used per 1000 tokens (`/proc/<pid>/task/*/schedstat`). Shares and CPU time do not "
           "count waiting for a core, so they hold on a busy machine too. `python -m bench "
           "--profile` measures only this.", ""]
    res = run.profile
    if _na(res) or not res:
        return out + [f"n/a: {res or 'not run'}", ""]
    return out + profile.tables([res[n] for n in sorted(res, key=int)])


SECTIONS = (latency_section, chat_section, flood_section, floor_section, profile_section)
