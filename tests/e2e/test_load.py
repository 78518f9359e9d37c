"""Issue 17 end to end: the load-time knobs and the queue under many clients, on real processes.

One server: two slots, ``OLLAMA_MAX_QUEUE=20``, a q8_0 K/V cache. The tests run in file order:
the knobs first, then the floods, which unload the model and load it with one decode thread
(two threads spinning at ggml's barriers crawl when a shared CI machine is oversubscribed; the
queue does not care how fast a slot frees).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.memory import estimate_footprint
from registry.gguf_kv import read_gguf_info
from tests.e2e.server import CorralServer, cmdline, descendants

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
QUEUE_FULL = {"error": "server busy, please try again.  maximum pending requests exceeded"}
PARALLEL, MAX_QUEUE, CTX = 2, 20, 2048


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("load")
    corral = CorralServer(base / "models", base / "serve.log",
                          OLLAMA_NUM_PARALLEL=str(PARALLEL), OLLAMA_MAX_QUEUE=str(MAX_QUEUE),
                          OLLAMA_KV_CACHE_TYPE="q8_0", OLLAMA_CONTEXT_LENGTH=str(CTX)).start()
    yield corral
    corral.stop()


def short(**options) -> dict:
    return {"model": MODEL, "prompt": "Count: 1, 2, 3,", "raw": True, "stream": False,
            "options": {"temperature": 0, "num_predict": 4, **options}}


FLOOD = short(num_thread=1)


async def _fire(server: CorralServer, n: int, body: dict) -> list[tuple[int, dict, float]]:
    """``n`` requests at once; (status, body, seconds) for each, all within 120 s or fail."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> tuple[int, dict, float]:
            started = time.monotonic()
            async with session.post(server.url + "/api/generate", json=body) as response:
                return response.status, await response.json(), time.monotonic() - started

        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 120)


def _runner(server: CorralServer) -> int:
    """The one runner process (a replaced one stops once idle: wait for that)."""
    deadline = time.monotonic() + 30
    while len(pids := server.runner_pids()) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = pids
    return pid


def _thread_ticks(pid: int) -> dict[str, int]:
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_q8_0_kv_cache_enters_the_reported_size(server):
    status, _ = server.post("/api/generate", short())
    assert status == 200
    (entry,) = server.get("/api/ps")["models"]
    model_path = cmdline(_runner(server)).split(" --model ")[1].split(" ")[0]
    per_token = read_gguf_info(Path(model_path)).kv_shape.f16_bytes_per_token  # the registry's
    q8 = estimate_footprint(model_path, CTX * PARALLEL, kv_cache_type="q8_0",
                            kv_bytes_per_token=per_token)
    f16 = estimate_footprint(model_path, CTX * PARALLEL, kv_cache_type="f16",
                             kv_bytes_per_token=per_token)
    assert entry["size"] == q8.total < f16.total
    assert q8.kv_cache == f16.kv_cache * 34 // 64
    loaded = server.log_events("model_loaded")[-1]
    assert loaded["kv_cache_type"] == "q8_0"  # what llama.cpp got, read back by the runner


def test_num_thread_one_starts_a_runner_that_decodes_on_one_thread(server):
    old = _runner(server)
    status, _ = server.post("/api/generate", short(num_thread=1))
    assert status == 200
    pid = _runner(server)
    assert pid != old  # a different load option: reloaded, as num_ctx does
    assert server.log_events("model_loaded")[-1]["n_threads"] == 1
    before = _thread_ticks(pid)
    status, body = server.post("/api/generate", short(num_predict=48))  # unset: no reload
    after = _thread_ticks(pid)
    assert status == 200 and body["eval_count"] == 48 and _runner(server) == pid
    spent = [after[t] - before.get(t, 0) for t in after]
    assert sum(s >= max(spent) / 4 for s in spent) == 1  # only the inference thread worked


def test_use_mmap_false_reads_the_weights_and_use_mlock_locks_them(server):
    status, _ = server.post("/api/generate", short(use_mmap=False))
    assert status == 200
    pid = _runner(server)
    model_path = cmdline(pid).split(" --model ")[1].split(" ")[0]
    assert model_path not in Path(f"/proc/{pid}/maps").read_text()
    assert server.log_events("model_loaded")[-1]["load_mode"] == "none"
    status, _ = server.post("/api/generate", short(use_mlock=True, use_mmap=True))
    assert status == 200
    pid = _runner(server)
    assert model_path in Path(f"/proc/{pid}/maps").read_text()
    assert server.log_events("model_loaded")[-1]["load_mode"] == "mmap+mlock"
    if os.geteuid() == 0:  # locking needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK
        assert _status_kb(pid, "VmLck") * 1024 >= os.path.getsize(model_path) // 2


def test_the_request_whose_load_runs_is_in_service_not_queued(server):
    """Ollama: a load in progress is not a queued request. 30 at once on an unloaded model:
    the one that loads plus MAX_QUEUE waiting are answered, the other 9 refused at once."""
    status, _ = server.post("/api/generate", {"model": MODEL, "keep_alive": 0})
    deadline = time.monotonic() + 30
    while server.get("/api/ps")["models"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200 and server.get("/api/ps")["models"] == []
    results = asyncio.run(_fire(server, 30, FLOOD))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * (1 + MAX_QUEUE) + [503] * 9
    assert all(body == QUEUE_FULL for status, body, _ in results if status == 503)


def test_two_hundred_clients_are_answered_or_refused_at_once(server):
    """The thousand-client scenario at a fifth of the scale: nothing hangs, nothing is lost, no
    5xx but the queue's 503s, and those come back without waiting for a slot."""
    before = server.get("/api/ps")["queue"]["refused"]
    results = asyncio.run(_fire(server, 200, FLOOD))
    served = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(served) + len(refused) == 200
    assert len(served) >= PARALLEL + MAX_QUEUE
    assert all(body["done"] and body["eval_count"] == 4 for _, body, _ in served)
    assert all(body == QUEUE_FULL for _, body, _ in refused)
    slowest_refusal = max(seconds for _, _, seconds in refused)
    slowest_answer = max(seconds for _, _, seconds in served)
    assert slowest_refusal < slowest_answer  # refusals never waited for the queue to move
    queue = server.get("/api/ps")["queue"]
    assert queue["waiting"] == 0 and queue["refused"] - before == len(refused)
    assert 0 < queue["wait_p99_ms"] <= queue["wait_max_ms"]
    drained = server.log_events("queue_drained")[-1]
    assert drained["refused"] >= 1 and drained["wait_p99_ms"] > 0
    gateway = [p for p in descendants(server.process.pid) if " -m gateway" in cmdline(p)]
    assert _status_kb(gateway[0], "VmHWM") < 300 * 1024
