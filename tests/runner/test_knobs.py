"""The load-time knobs in the engine: threads, batch size, mmap/mlock, K/V cache type."""

from __future__ import annotations

import os

import pytest

from runner.engine import Engine
from runner.llama import silence_llama_logs
from runner.settings import RunnerSettings, parse_args
from tests.runner.conftest import collect, request

COUNTING = "Here are the numbers from 1 to 100: 1, 2, 3,"


async def _engine(model_path: str, **settings) -> Engine:
    silence_llama_logs()
    engine = Engine(RunnerSettings(model=model_path, ctx_size=512, parallel=1,
                                   **{"threads": 2, **settings}))
    await engine.start()
    return engine


def _cpu_ticks() -> dict[str, int]:
    """utime + stime of every thread of this process."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


async def _busy_threads(engine: Engine) -> int:
    """Threads that worked for at least a quarter of the busiest one during a generation."""
    before = _cpu_ticks()
    await collect(engine, request(COUNTING, num_predict=32, temperature=0))
    after = _cpu_ticks()
    spent = [after[t] - before.get(t, 0) for t in after]
    return sum(s >= max(spent) / 4 for s in spent)


@pytest.mark.parametrize("threads", [1, 2])
async def test_decode_uses_the_threads_asked_for(model_path, threads):
    engine = await _engine(model_path, threads=threads)
    try:
        assert engine.info().n_threads == threads
        assert await _busy_threads(engine) == threads
    finally:
        await engine.stop()


async def test_batch_size_and_load_mode_reach_llama_cpp(model_path):
    engine = await _engine(model_path, batch_size=64, use_mmap=False, use_mlock=True)
    try:
        info = engine.info()
        assert (info.n_batch, info.load_mode, info.kv_cache_type) == (64, "mlock", "f16")
    finally:
        await engine.stop()
    engine = await _engine(model_path)
    try:
        assert (engine.info().n_batch, engine.info().load_mode) == (512, "mmap")
    finally:
        await engine.stop()


async def test_q8_0_cache_gives_the_same_greedy_tokens_as_f16(model_path):
    """SmolLM2: the first 16 greedy tokens agree (q8_0 keeps 8 bits per value plus a scale per
    32, close enough that no argmax flips this early); q4_0 is only checked to run."""
    answers = {}
    for kind in ("f16", "q8_0", "q4_0"):
        engine = await _engine(model_path, cache_type=kind)
        try:
            assert engine.info().kv_cache_type == kind
            _, done = await collect(engine, request(num_predict=16, temperature=0))
            answers[kind] = list(done.context)[-done.eval_count:]
        finally:
            await engine.stop()
    assert len(answers["f16"]) == 16
    assert answers["q8_0"] == answers["f16"]
    assert len(answers["q4_0"]) == 16


def test_flags_parse():
    s = parse_args(["--model", "m", "--socket", "s", "--no-mmap", "--mlock", "--flash-attn", "on",
                    "--cache-type", "q4_0", "--batch-size", "32"])
    assert (s.use_mmap, s.use_mlock, s.flash_attention, s.cache_type, s.batch_size) == \
        (False, True, "on", "q4_0", 32)
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--socket", "s", "--cache-type", "q5_1"])
