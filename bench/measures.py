"""The measurements under load, run by ``python -m bench`` after the per-model ones:

* concurrent streams — Corral (``OLLAMA_NUM_PARALLEL`` = N) and ``llama-server -np N``, both
  over HTTP with the same prompts, and ``llama-batched-bench`` at the same batch sizes;
* Corral's per-step timer and CPU per process at a few of those N (``bench/profile.py``): the
  measured reason behind the stream targets;
* the closed-loop latency test (``bench/load.py``) on both servers;
* multi-turn chat, turns 1..N (``bench/chat.py``) on both servers;
* a thousand simultaneous connections against Corral (``bench/load.py``);
* pull against the verification floor with a synthetic GGUF of at least 1 GB (``bench/pull.py``).

Each server gets a fresh process per measurement, with the same threads, per-slot context and
slots; each section records a reason string instead of figures when it could not run.
"""

from __future__ import annotations

import dataclasses

from bench import chat, load, profile, pull, scenarios
from bench.clients import CorralTarget, LlamaServerTarget
from bench.servers import Corral, corral_pids, vm_hwm


def _corral(bench, name: str, parallel: int, **env: str) -> Corral:
    return Corral(bench.scratch / f"models-{name}", bench.logs / f"corral-{name}.log",
                  OLLAMA_NUM_PARALLEL=str(parallel), **env).start()


def streams(bench, model) -> None:
    """Aggregate decode at each N: Corral, llama-server, llama-batched-bench."""
    plan, run = bench.plan, bench.run
    run.streams_model = model.key
    corral: dict[int, list[float]] = {}
    server: dict[int, list[float]] | str = {}
    run.streams["corral"], run.streams["llama-server"] = corral, server
    prompt_tokens = None
    for i, n in enumerate(plan.streams):
        def on_corral(n: int = n) -> list[float]:
            nonlocal prompt_tokens
            rates, tokens = scenarios.server_streams(
                lambda: _corral(bench, f"np{n}", n),
                lambda url: CorralTarget(url, model.corral_name), n, plan.stream_reps,
                plan.n_predict)
            prompt_tokens = prompt_tokens or tokens
            return rates

        def on_llama(n: int = n) -> list[float]:
            rates, _ = scenarios.server_streams(
                lambda: bench.llama_server(model, f"llama-server-np{n}", parallel=n).start(),
                LlamaServerTarget, n, plan.stream_reps, plan.n_predict)
            return rates

        jobs = [("corral", corral, on_corral), ("llama-server", server, on_llama)]
        for name, store, fn in (jobs if i % 2 == 0 else jobs[::-1]):  # take turns going first
            bench.log(f"{model.label}: {n} concurrent streams on {name}")
            if isinstance(store, dict):
                bench.measure(f"{name} {n} streams", store, n, fn)
    if isinstance(bench.tools, str):
        run.streams["batched"] = run.streams["llama-server"] = bench.tools
        return
    batched: dict[int, list[float]] = {}
    run.streams["batched"] = batched

    def batched_rounds() -> None:
        for r in range(plan.stream_reps):
            bench.log(f"{model.label}: llama-batched-bench round {r + 1}/{plan.stream_reps}")
            rows = scenarios.batched_bench(
                bench.tools["llama-batched-bench"], model.path, list(plan.streams),
                prompt_tokens or 32, plan.n_predict, bench.threads,
                bench.logs / f"batched-{r}.log")
            for n, rate in rows.items():
                batched.setdefault(n, []).append(rate)

    bench.guarded("llama-batched-bench", batched_rounds,
                  lambda why: run.streams.__setitem__("batched", why))


def latency(bench, model) -> None:
    """The closed-loop test on Corral and llama-server (same slots, clients, time, prompts)."""
    plan, out = bench.plan, bench.run.latency
    slots = plan.latency_slots
    bench.run.latency_plan = {"clients": plan.latency_clients, "slots": slots}

    def on_corral() -> dict:
        server = _corral(bench, "latency", slots)
        try:
            return dataclasses.asdict(load.closed_loop(
                server.url, "corral", model.corral_name, plan.latency_clients,
                plan.latency_seconds, plan.latency_tokens))
        finally:
            server.stop()

    def on_llama() -> dict:
        with bench.llama_server(model, "llama-server-latency", parallel=slots).start() as proc:
            return dataclasses.asdict(load.closed_loop(
                proc.url, "llama-server", "", plan.latency_clients, plan.latency_seconds,
                plan.latency_tokens))

    for name, fn in (("corral", on_corral), ("llama-server", on_llama)):
        bench.log(f"{model.label}: closed loop, {plan.latency_clients} clients, "
                  f"{plan.latency_seconds:.0f} s on {name}")
        bench.measure(f"{name} closed loop", out, name, fn)


def multi_turn(bench, model) -> None:
    """Turns 1..N of concurrent conversations on Corral and llama-server."""
    plan, out = bench.plan, bench.run.chat
    count = plan.chat_conversations

    def on_corral() -> dict:
        server = _corral(bench, "chat", count)
        try:
            results = chat.conversations(chat.corral_turn, server.url, model.corral_name, count,
                                         plan.chat_turns, plan.chat_tokens)
            return chat.corral_evaluated(results, server.log_path)
        finally:
            server.stop()

    def on_llama() -> dict:
        with bench.llama_server(model, "llama-server-chat", parallel=count).start() as proc:
            return chat.conversations(chat.llama_server_turn, proc.url, "", count,
                                      plan.chat_turns, plan.chat_tokens)

    for name, fn in (("corral", on_corral), ("llama-server", on_llama)):
        bench.log(f"{model.label}: {count} conversations of {plan.chat_turns} turns on {name}")
        bench.measure(f"{name} multi-turn chat", out, name, fn)


def step_profile(bench) -> None:
    """``--profile``'s measurement at ``plan.profile_streams``, kept with this run's figures."""
    plan = bench.plan

    def measure() -> dict:
        return {n: profile.one(bench.scratch / f"profile-np{n}", bench.logs, n,
                               plan.profile_tokens, bench.threads)
                for n in plan.profile_streams}

    bench.log(f"per-step profile at {plan.profile_streams} streams")
    bench.guarded("profile", lambda: bench.run.__setattr__("profile", measure()),
                  lambda why: bench.run.__setattr__("profile", why))


def flood(bench, model) -> None:
    """``plan.flood`` simultaneous connections against one Corral (default queue limit)."""
    plan = bench.plan

    def measure() -> dict:
        server = _corral(bench, "flood", plan.flood_slots)
        try:
            CorralTarget(server.url, model.corral_name).stream("warm up", 2)
            result = load.thousand(server.url, model.corral_name, plan.flood, plan.flood_tokens)
            gateways = corral_pids(server)["gateway"]
            result.gateway_hwm = max((vm_hwm(p) or 0 for p in gateways), default=None)
            return dataclasses.asdict(result)
        finally:
            server.stop()

    bench.log(f"{model.label}: {plan.flood} simultaneous connections")
    bench.guarded("flood", lambda: bench.run.__setattr__("flood", measure()),
                  lambda why: bench.run.__setattr__("flood", why))


def pull_floor(bench) -> None:
    """Corral's pull against HTTP copy + sha256sum, with a synthetic GGUF of ``plan.floor_bytes``."""
    plan = bench.plan

    def measure() -> dict:
        model = pull.synthetic_gguf(bench.scratch / "synthetic.gguf", plan.floor_bytes)
        return pull.measure_floor(model, bench.scratch / "pull-floor", plan.pull_reps, bench.log)

    bench.log(f"pull vs verification floor, {plan.floor_bytes / 1e9:.2f} GB synthetic GGUF")
    bench.guarded("pull floor", lambda: bench.run.__setattr__("pull_floor", measure()),
                  lambda why: bench.run.__setattr__("pull_floor", why))
