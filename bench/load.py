"""Many clients at once: a closed-loop latency test and a thousand simultaneous connections.

* ``closed_loop``: ``clients`` clients, each sending its next request when the last one ends,
  for a fixed time, prompts of mixed lengths, the same answer length; per server: requests
  completed in the window, time to first token and time per output token (p50/p99). TPOT of a
  request = (last token − first token) ÷ (tokens − 1), client side, as the decode rate elsewhere.
* ``thousand``: ``n`` connections opened together against one Corral, each asking for a short
  answer: how many were answered, refused with 503 (``OLLAMA_MAX_QUEUE``), failed otherwise or
  never came back; how fast the refusals came; the gateway's peak RSS; the queue-wait
  percentiles Corral reports in ``/api/ps``.

Both use one asyncio client (aiohttp), so the client's own cost is the same for every server.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from dataclasses import dataclass, field

import aiohttp

from bench.scenarios import PROMPT

# Mixed prompt lengths (tokens, roughly): a short question, a paragraph, a page, two pages.
PROMPT_REPEATS = (1, 4, 16, 32)


@dataclass
class Latency:
    """One server's closed-loop run."""

    completed: int = 0
    failed: int = 0
    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    seconds: float = 0.0


def prompt_for(client: int, request: int) -> str:
    """A distinct prompt (no shared prefix to cache) of one of the mixed lengths."""
    repeats = PROMPT_REPEATS[(client + request) % len(PROMPT_REPEATS)]
    return f"[{client}.{request}] " + " ".join([PROMPT] * repeats)


def _corral_body(model: str, prompt: str, n_predict: int) -> tuple[str, dict]:
    return "/api/generate", {"model": model, "prompt": prompt, "raw": True, "stream": True,
                             "options": {"temperature": 0, "num_predict": n_predict, "seed": 0}}


def _llama_body(prompt: str, n_predict: int) -> tuple[str, dict]:
    return "/completion", {"prompt": prompt, "n_predict": n_predict, "temperature": 0,
                           "seed": 0, "ignore_eos": True, "stream": True}


async def _stream_once(session: aiohttp.ClientSession, url: str, kind: str, model: str,
                       prompt: str, n_predict: int) -> tuple[float, float, float, int]:
    """(sent, first token, last token, tokens) of one streamed completion."""
    path, body = (_corral_body(model, prompt, n_predict) if kind == "corral"
                  else _llama_body(prompt, n_predict))
    sent, first, last, events, tokens = time.perf_counter(), None, None, 0, None
    async with session.post(url + path, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{response.status} {(await response.text())[:200]}")
        async for line in response.content:
            if kind == "llama-server":
                if not line.startswith(b"data: "):
                    continue
                line = line[6:]
            if not line.strip():
                continue
            event = json.loads(line)
            finished = event.get("done") if kind == "corral" else event.get("stop")
            if finished:
                tokens = (event.get("eval_count") if kind == "corral"
                          else (event.get("timings") or {}).get("predicted_n"))
                break
            now = time.perf_counter()
            first = first or now
            last = now
            events += 1
    return sent, first or sent, last or sent, tokens or events


async def _closed_loop(url: str, kind: str, model: str, clients: int, seconds: float,
                       n_predict: int) -> Latency:
    result = Latency()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def client(c: int) -> None:
            r = 0
            while time.perf_counter() < deadline:
                try:
                    sent, first, last, tokens = await _stream_once(
                        session, url, kind, model, prompt_for(c, r), n_predict)
                except (aiohttp.ClientError, RuntimeError):
                    result.failed += 1
                    continue
                finally:
                    r += 1
                if last > deadline:
                    return  # finished after the window closed: not counted
                result.completed += 1
                result.ttft.append(first - sent)
                if tokens > 1 and last > first:
                    result.tpot.append((last - first) / (tokens - 1))

        tasks = [asyncio.create_task(client(c)) for c in range(clients)]
        await asyncio.wait(tasks, timeout=seconds)
        for task in tasks:
            task.cancel()  # in flight at the deadline: closed, not counted
        await asyncio.gather(*tasks, return_exceptions=True)
        result.seconds = time.perf_counter() - started
    return result


def closed_loop(url: str, kind: str, model: str, clients: int, seconds: float,
                n_predict: int) -> Latency:
    """Run the closed loop against one server (``kind``: ``corral`` or ``llama-server``)."""
    return asyncio.run(_closed_loop(url, kind, model, clients, seconds, n_predict))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None without values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Flood:
    """What ``n`` simultaneous connections got back."""

    n: int
    answered: int = 0
    refused: int = 0
    other: dict[str, int] = field(default_factory=dict)  # status or exception -> count
    lost: int = 0  # no answer before the timeout
    refusal_seconds: list[float] = field(default_factory=list)
    answer_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    queue: dict = field(default_factory=dict)
    gateway_hwm: int | None = None


async def _flood(url: str, model: str, n: int, n_predict: int, timeout: float) -> Flood:
    result = Flood(n)
    body = {"model": model, "prompt": PROMPT, "raw": True, "stream": False,
            "options": {"temperature": 0, "num_predict": n_predict}}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> None:
            sent = time.perf_counter()
            try:
                async with session.post(url + "/api/generate", json=body) as response:
                    reply = await response.json(content_type=None)
                    status = response.status
            except aiohttp.ClientError as exc:
                key = type(exc).__name__
                result.other[key] = result.other.get(key, 0) + 1
                return
            took = time.perf_counter() - sent
            if status == 200 and reply.get("done") and reply.get("eval_count") == n_predict:
                result.answered += 1
                result.answer_seconds.append(took)
            elif status == 503 and "maximum pending requests" in reply.get("error", ""):
                result.refused += 1
                result.refusal_seconds.append(took)
            else:
                result.other[str(status)] = result.other.get(str(status), 0) + 1

        started = time.perf_counter()
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        result.lost = len(pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        result.seconds = time.perf_counter() - started
        async with session.get(url + "/api/ps") as response:
            result.queue = (await response.json()).get("queue", {})
    return result


def thousand(url: str, model: str, n: int, n_predict: int, timeout: float = 600.0) -> Flood:
    """``n`` connections at once against a Corral at ``url``."""
    return asyncio.run(_flood(url, model, n, n_predict, timeout))


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
