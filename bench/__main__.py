"""``python -m bench``: Corral against llama.cpp's own server and llama-cpp-python's server.

Full run (both models, every measurement; writes bench/results/<date>-<host>.md)::

    .venv/bin/python -m bench

Smoke run for CI (SmolLM2 only, tiny answers, one round; llama.cpp's tools only if already
built; writes under bench/.cache/results/)::

    .venv/bin/python -m bench --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import build, measures, profile, pull, report, scenarios
from bench.clients import CorralTarget, LlamaCppPythonTarget, LlamaServerTarget
from bench.models import Model, NotAvailable, gemma3, register, smollm2
from bench.servers import (Corral, LlamaCppPythonServer, LlamaServer, corral_pids,
                           vm_hwm)
from tests.e2e.server import ROOT

THREADS = 2
CTX = 2048
LOADERS = {"smollm2": smollm2, "gemma3": gemma3}


@dataclass(frozen=True)
class Plan:
    models: tuple[str, ...]
    n_predict: int
    reps: int
    ttft_reps: int
    cold_reps: int
    streams: tuple[int, ...]
    stream_reps: int
    pull_models: tuple[str, ...]
    pull_reps: int
    latency_clients: int = 64  # closed loop: clients, slots on each server, seconds, answer
    latency_slots: int = 8
    latency_seconds: float = 60.0
    latency_tokens: int = 64
    chat_conversations: int = 4  # multi-turn: conversations side by side, turns, answer cap
    chat_turns: int = 10
    chat_tokens: int = 48
    flood: int = 1000  # simultaneous connections, slots, answer length
    flood_slots: int = 4
    flood_tokens: int = 16
    floor_bytes: int = 1_100_000_000  # synthetic GGUF for pull vs the verification floor
    profile_streams: tuple[int, ...] = (4, 8)  # the per-step timer behind the stream targets
    profile_tokens: int = 128


FULL = Plan(("smollm2", "gemma3"), 256, 5, 8, 3, (1, 2, 4, 8, 16), 2, ("smollm2", "gemma3"), 3)
SMOKE = Plan(("smollm2",), 16, 1, 1, 1, (2,), 1, ("smollm2",), 1, latency_clients=4,
             latency_slots=2, latency_seconds=3.0, latency_tokens=4, chat_conversations=2,
             chat_turns=2, chat_tokens=4, flood=24, flood_slots=2, flood_tokens=2,
             floor_bytes=32 << 20, profile_streams=(2,), profile_tokens=8)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    """One run: the plan, where logs go, the llama.cpp tools (or why they are missing)."""

    threads = THREADS

    def __init__(self, run: report.Run, plan: Plan, scratch: Path, logs: Path,
                 tools: dict[str, Path] | str) -> None:
        self.run, self.plan, self.scratch, self.logs, self.tools = run, plan, scratch, logs, tools
        self.log = log

    def guarded(self, what: str, fn: Callable, on_na: Callable[[str], None]) -> None:
        """Run one measurement; a missing feature becomes n/a, a failure an error entry."""
        try:
            fn()
        except NotAvailable as exc:
            log(f"{what}: n/a: {exc}")
            on_na(str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded, reported, and turned into a non-zero exit
            log(f"{what} failed:\n{traceback.format_exc()}")
            self.run.errors.append(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
            on_na(f"error ({type(exc).__name__})")

    def llama_server(self, model: Model, name: str, parallel: int = 1) -> LlamaServer:
        if isinstance(self.tools, str):
            raise NotAvailable(self.tools)
        return LlamaServer(self.tools["llama-server"], model.path, self.logs / f"{name}.log",
                           threads=THREADS, ctx=CTX, parallel=parallel)

    def llama_cpp_python(self, model: Model, name: str) -> LlamaCppPythonServer:
        return LlamaCppPythonServer(model.path, self.logs / f"{name}.log", threads=THREADS, ctx=CTX)

    def measure(self, what: str, store: dict, key: object, fn: Callable) -> None:
        """``store[key] = fn()``, or the reason it could not be measured."""
        self.guarded(what, lambda: store.__setitem__(key, fn()),
                     lambda why: store.__setitem__(key, why))

    # -- per model: cold start, decode, TTFT, RSS ----------------------------------------------

    def model(self, corral: Corral, model: Model) -> None:
        key, reps = model.key, self.plan.cold_reps
        corral_na = None
        if key != "smollm2":
            try:
                register(corral, model)
            except NotAvailable as exc:
                corral_na = f"Corral could not register it: {exc}"
            except Exception as exc:  # noqa: BLE001 - reported; the other servers are still measured
                self.run.errors.append(f"{key} register: {type(exc).__name__}: {exc}")
                corral_na = f"error registering it ({type(exc).__name__})"
        target = CorralTarget(corral.url, model.corral_name)
        cold = self.run.cold.setdefault(key, {})
        self.run.rss.setdefault(key, {})
        log(f"{model.label}: cold starts, {reps} each")
        if corral_na:
            cold["corral"] = self.run.rss[key]["runner"] = corral_na
        else:
            loads = cold.setdefault("corral:load", [])
            self.measure(f"{key} corral cold", cold, "corral",
                         lambda: scenarios.corral_cold(target, corral, reps, loads))
        self.measure(f"{key} llama-server cold", cold, "llama-server",
                     lambda: scenarios.process_cold(
                         lambda: self.llama_server(model, f"{key}-llama-server-cold").start(),
                         LlamaServerTarget, reps))
        self.measure(f"{key} llama-cpp-python cold", cold, "llama-cpp-python",
                     lambda: scenarios.process_cold(
                         lambda: self.llama_cpp_python(model, f"{key}-llama-cpp-python-cold").start(),
                         LlamaCppPythonTarget, reps))
        self.guarded(f"{key} decode/ttft", lambda: self._warm(corral, model, target, corral_na),
                     lambda why: [d.setdefault(key, why) for d in
                                  (self.run.decode, self.run.ttft_same, self.run.ttft_fresh)])
        if not corral_na:
            self.guarded(f"{key} unload", target.unload, lambda why: None)

    def _warm(self, corral: Corral, model: Model, corral_target: CorralTarget,
              corral_na: str | None) -> None:
        key, p, rss = model.key, self.plan, self.run.rss[model.key]
        with contextlib.ExitStack() as stack:
            targets, missing, pids = [], {}, {}
            if corral_na:
                missing["corral"] = corral_na
            else:
                targets.append(corral_target)
            for name, make, cls in (("llama-server", self.llama_server, LlamaServerTarget),
                                    ("llama-cpp-python", self.llama_cpp_python,
                                     LlamaCppPythonTarget)):
                try:
                    proc = stack.enter_context(make(model, f"{key}-{name}").start())
                except NotAvailable as exc:
                    missing[name] = rss[name] = str(exc)
                    continue
                targets.append(cls(proc.url))
                pids[name] = proc.pid
            log(f"{model.label}: decode, {p.reps} rounds of {p.n_predict} tokens")
            samples = scenarios.decode(targets, p.reps, p.n_predict, log)
            log(f"{model.label}: time to first token, {p.ttft_reps} rounds")
            same, fresh = scenarios.ttft(targets, p.ttft_reps)
            for s in (samples, same, fresh):
                s.na.update(missing)
            self.run.decode[key], self.run.ttft_same[key], self.run.ttft_fresh[key] = \
                samples, same, fresh
            for name, pid in pids.items():
                rss[name] = vm_hwm(pid)
            if not corral_na:
                runners = corral_pids(corral)["runner"]
                rss["runner"] = max((vm_hwm(r) or 0 for r in runners), default=None)

    # -- pull ----------------------------------------------------------------------------------

    def pulls(self, models: dict[str, Model]) -> None:
        for key in self.plan.pull_models:
            log(f"{models[key].label}: pull from docker-registry, {self.plan.pull_reps} rounds")
            self.measure(f"{key} pull", self.run.pull, key, lambda key=key: pull.measure(
                models[key], self.scratch / f"pull-{key}", self.plan.pull_reps, log))


IMPORT_LIKE_A_RUNNER = ("from runner.bindings import use_bindings_only; use_bindings_only(); "
                        "import runner.process")


def import_seconds(reps: int) -> list[float]:
    """Wall time of a Python process that only imports what a Corral runner imports."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORT_LIKE_A_RUNNER], cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return times


def tools(args: argparse.Namespace) -> dict[str, Path] | str:
    """The built llama.cpp tools, or the reason they are not there."""
    try:
        if args.no_build or (args.smoke and not args.build):
            paths = {n: build.CACHE / f"build-{build.llama_cpp_python_version()}" / "bin" / n
                     for n in build.TARGETS}
            if all(p.is_file() for p in paths.values()):
                return paths
            return "llama.cpp tools not built (run `python -m bench` once without --smoke)"
        return build.binaries(jobs=args.jobs, log=log)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"llama.cpp build failed: {exc}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--build", action="store_true", help="with --smoke: build llama.cpp too")
    parser.add_argument("--no-build", action="store_true", help="never build llama.cpp")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    parser.add_argument("--models", help="comma list of smollm2,gemma3")
    parser.add_argument("--tokens", type=int, help="answer length (default 256; smoke 16)")
    parser.add_argument("--reps", type=int,
                        help="rounds of every measurement (default: decode 5, TTFT 8, cold 3, "
                             "streams 2, pull 3; smoke 1)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/...)")
    parser.add_argument("--profile", action="store_true",
                        help="only Corral's per-step timer and CPU per process (bench/profile.py)")
    parser.add_argument("--streams", help="with --profile: comma list of stream counts (1,4,8)")
    parser.add_argument("--cpu-sampling", action="store_true",
                        help="with --profile: Corral samples on the CPU only (for comparison)")
    return parser.parse_args(argv)


def plan_for(args: argparse.Namespace) -> Plan:
    base = SMOKE if args.smoke else FULL
    models = tuple(args.models.split(",")) if args.models else base.models
    unknown = set(models) - set(LOADERS)
    if unknown:
        raise SystemExit(f"unknown models: {', '.join(sorted(unknown))}")
    reps = args.reps
    return dataclasses.replace(
        base, models=models, n_predict=args.tokens or base.n_predict, reps=reps or base.reps,
        ttft_reps=reps or base.ttft_reps, cold_reps=reps or base.cold_reps,
        stream_reps=reps or base.stream_reps,
        pull_models=tuple(m for m in base.pull_models if m in models),
        pull_reps=reps or base.pull_reps)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds every ``finally``: no server outlives the harness


def run_profile(args: argparse.Namespace) -> int:
    """``--profile``: per-step timer and CPU per process at a few stream counts."""
    streams = [int(n) for n in (args.streams or "1,4,8").split(",")]
    n_predict = args.tokens or 128
    logs = build.CACHE / "logs" / f"profile-{time.strftime('%Y%m%d-%H%M%S')}"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="corral-profile-") as tmp:
        for n in streams:
            log(f"profile: {n} streams of {n_predict} tokens")
            results.append(profile.one(Path(tmp) / f"np{n}", logs, n, n_predict, THREADS,
                                       cpu_sampling=args.cpu_sampling))
    text = profile.render(results, n_predict, THREADS)
    out = args.out or build.CACHE / "results" / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    sys.stdout.write(text)
    log(f"profile written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse_args(argv)
    if args.profile:
        return run_profile(args)
    plan = plan_for(args)
    command = " ".join([".venv/bin/python -m bench", *(argv if argv is not None else sys.argv[1:])])
    run = report.Run("smoke" if args.smoke else "full", command, THREADS, plan.n_predict, plan.reps)
    llama_tools = tools(args)
    logs = build.CACHE / "logs" / f"{run.started:%Y%m%d-%H%M%S}"
    logs.mkdir(parents=True, exist_ok=True)
    log(f"logs in {logs}")
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        bench = Bench(run, plan, Path(tmp), logs, llama_tools)
        models = {k: LOADERS[k]() for k in dict.fromkeys(("smollm2", *plan.models))}
        run.models = {k: {"label": m.label, "size": m.size} for k, m in models.items()}
        run.imports = import_seconds(3 if plan.cold_reps > 1 else 1)
        corral = Corral(Path(tmp) / "models", logs / "corral.log",
                              OLLAMA_NUM_PARALLEL="1").start()
        try:
            for key in plan.models:
                bench.model(corral, models[key])
            for role in ("gateway", "registry"):
                peaks = [vm_hwm(pid) or 0 for pid in corral_pids(corral)[role]]
                for key in plan.models:
                    run.rss[key][role] = max(peaks, default=None)
        finally:
            corral.stop()
        smol = models["smollm2"]
        measures.streams(bench, smol)
        measures.step_profile(bench)
        measures.latency(bench, smol)
        measures.multi_turn(bench, smol)
        measures.flood(bench, smol)
        bench.pulls(models)
        measures.pull_floor(bench)
    path = report.write(run, args.out)
    log(f"results written to {path}")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
