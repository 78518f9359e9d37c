"""Streaming clients for the three APIs, timed identically from the client side.

Every target sends one streaming completion and records when the request was sent, when the first
and the last token event arrived, how many token events came, and the server's own token count
and rate where the API reports them. Decode rate = (tokens − 1) / (last − first): the first token
carries prompt processing, so it is left out for every server alike.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Stream:
    """Timings of one streamed completion (``time.perf_counter`` seconds)."""

    sent: float
    first: float | None = None
    last: float | None = None
    events: int = 0
    server_tokens: int | None = None
    server_rate: float | None = None
    prompt_tokens: int | None = None
    load: float | None = None  # Corral's load_duration: runner spawn + model load, seconds

    @property
    def tokens(self) -> int:
        """Tokens generated: the server's count when it gives one, else the token events seen."""
        return self.server_tokens or self.events

    @property
    def ttft(self) -> float:
        return self.first - self.sent

    @property
    def decode_rate(self) -> float | None:
        if self.first is None or self.last is None or self.tokens < 2 or self.last <= self.first:
            return None
        return (self.tokens - 1) / (self.last - self.first)

    def saw_token(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.events += 1


def _post_lines(url: str, path: str, body: dict, timeout: float) -> Iterator[bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"POST {path}: {resp.status} {resp.read()[:300]!r}")
        while line := resp.readline():
            if line.strip():
                yield line
    finally:
        conn.close()


class Target:
    """One server's completion endpoint."""

    name = "?"

    def __init__(self, url: str) -> None:
        self.url = url

    def stream(self, prompt: str, n_predict: int, timeout: float = 300.0) -> Stream:
        raise NotImplementedError


class CorralTarget(Target):
    """Corral's ``/api/generate`` in raw mode (no template), temperature 0."""

    name = "corral"

    def __init__(self, url: str, model: str, keep_alive: str | int | None = None) -> None:
        super().__init__(url)
        self.model = model
        self.keep_alive = keep_alive

    def stream(self, prompt: str, n_predict: int, timeout: float = 300.0) -> Stream:
        body = {"model": self.model, "prompt": prompt, "raw": True, "stream": True,
                "options": {"temperature": 0, "num_predict": n_predict, "seed": 0}}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        result = Stream(sent=time.perf_counter())
        for line in _post_lines(self.url, "/api/generate", body, timeout):
            event = json.loads(line)
            if "error" in event:
                raise RuntimeError(f"corral: {event['error']}")
            if not event.get("done"):
                result.saw_token()
            else:
                result.server_tokens = event.get("eval_count")
                result.prompt_tokens = event.get("prompt_eval_count")
                result.load = (event.get("load_duration") or 0) / 1e9
                if event.get("eval_duration"):
                    result.server_rate = event["eval_count"] / event["eval_duration"] * 1e9
        return result

    def unload(self) -> None:
        for _ in _post_lines(self.url, "/api/generate",
                             {"model": self.model, "prompt": "", "keep_alive": 0, "stream": False},
                             60):
            pass


class LlamaServerTarget(Target):
    """llama.cpp ``llama-server``'s native ``/completion`` stream (SSE), temperature 0."""

    name = "llama-server"

    def stream(self, prompt: str, n_predict: int, timeout: float = 300.0) -> Stream:
        body = {"prompt": prompt, "n_predict": n_predict, "temperature": 0, "seed": 0,
                "ignore_eos": True, "stream": True}
        result = Stream(sent=time.perf_counter())
        for line in _post_lines(self.url, "/completion", body, timeout):
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            if not event.get("stop"):
                result.saw_token()
            else:
                timings = event.get("timings") or {}
                result.server_tokens = timings.get("predicted_n")
                result.server_rate = timings.get("predicted_per_second")
                result.prompt_tokens = timings.get("prompt_n")
        return result


class LlamaCppPythonTarget(Target):
    """llama-cpp-python's server: OpenAI ``/v1/completions`` stream, temperature 0."""

    name = "llama-cpp-python"

    def stream(self, prompt: str, n_predict: int, timeout: float = 300.0) -> Stream:
        body = {"prompt": prompt, "max_tokens": n_predict, "temperature": 0, "seed": 0,
                "stream": True}
        result = Stream(sent=time.perf_counter())
        for line in _post_lines(self.url, "/v1/completions", body, timeout):
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            choice = (event.get("choices") or [{}])[0]
            if choice.get("finish_reason") is None or choice.get("text"):
                result.saw_token()
        return result


def concurrent(target: Target, prompts: list[str], n_predict: int) -> list[Stream]:
    """Stream one completion per prompt at once (threads released together by a barrier)."""
    barrier = threading.Barrier(len(prompts))
    results: list[Stream | BaseException | None] = [None] * len(prompts)

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target.stream(prompts[i], n_predict)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def aggregate_rate(streams: list[Stream]) -> float:
    """Tokens after each stream's first, over the window from the earliest first token to the
    latest last token: what the batch decoded per second while all of it was running."""
    tokens = sum(s.tokens - 1 for s in streams)
    window = max(s.last for s in streams) - min(s.first for s in streams)
    return tokens / window
