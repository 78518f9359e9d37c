"""Multi-turn chat: prompt evaluation per turn, turns 1 to N, while conversations share slots.

``conversations`` chats run side by side on a server with that many slots; each sends turn k
with the whole history (its earlier questions and the server's answers), as chat clients do. A
server that keeps each conversation's KV cache (slot chosen by longest common prefix, as both
Corral and llama-server do) evaluates only the new tokens, so turn k's prompt-eval time stays
flat although the prompt grows. Reported per turn: the median of the servers' own prompt-eval
time and prompt tokens evaluated (llama-server: ``timings.prompt_ms``/``prompt_n``; Corral:
``prompt_eval_duration``, and ``prompt_eval_count`` less the ``reused_tokens`` its runner logs
for the request: like Ollama's, Corral's ``prompt_eval_count`` is the whole prompt).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

QUESTION = "Turn {k}: name one animal that starts with the letter {letter}, in one short sentence."


def _post(url: str, path: str, body: dict, headers: dict | None = None) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        conn.request("POST", path, json.dumps(body),
                     {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {path}: {resp.status} {data[:200]!r}")
        return json.loads(data)
    finally:
        conn.close()


def corral_turn(url: str, model: str, messages: list[dict], n_predict: int) -> tuple[str, dict]:
    """One turn; ``evaluated`` is the whole prompt until ``corral_evaluated`` subtracts the
    reused prefix (the request id finds the runner's log line)."""
    request_id = f"bench-chat-{uuid.uuid4().hex[:16]}"
    reply = _post(url, "/api/chat", {"model": model, "messages": messages, "stream": False,
                                     "options": {"temperature": 0, "seed": 0,
                                                 "num_predict": n_predict}},
                  {"X-Request-Id": request_id})
    return reply["message"]["content"], {
        "ms": reply["prompt_eval_duration"] / 1e6, "evaluated": reply["prompt_eval_count"],
        "prompt": reply["prompt_eval_count"], "request_id": request_id}


def corral_evaluated(results: dict[int, list[dict]], log_path: Path,
                     wait_s: float = 10.0) -> dict[int, list[dict]]:
    """Set each Corral turn's ``evaluated`` to the tokens its runner really evaluated: the
    ``generation_finished`` line of its request id gives the prompt and the reused prefix.
    A turn whose line never shows up keeps ``evaluated`` None (reported as missing)."""
    wanted = {f["request_id"]: f for figures in results.values() for f in figures}
    found: dict[str, int] = {}
    deadline = time.monotonic() + wait_s
    while True:
        for line in log_path.read_text(errors="replace").splitlines():
            if '"generation_finished"' not in line or not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("request_id") in wanted:
                found[event["request_id"]] = (event["prompt_eval_count"]
                                              - event.get("reused_tokens", 0))
        if len(found) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the runner's lines reach the log through the gateway's relay
    for request_id, figures in wanted.items():
        figures["evaluated"] = found.get(request_id)
    return results


def llama_server_turn(url: str, model: str, messages: list[dict],
                      n_predict: int) -> tuple[str, dict]:
    reply = _post(url, "/v1/chat/completions", {"messages": messages, "max_tokens": n_predict,
                                                "temperature": 0, "seed": 0})
    timings = reply.get("timings") or {}
    return reply["choices"][0]["message"]["content"], {
        "ms": timings.get("prompt_ms"), "evaluated": timings.get("prompt_n")}


def conversations(turn, url: str, model: str, count: int, turns: int,
                  n_predict: int) -> dict[int, list[dict]]:
    """``{turn: [per-conversation figures]}``; conversations run in parallel threads."""
    results: dict[int, list[dict]] = {k: [] for k in range(1, turns + 1)}
    lock, errors = threading.Lock(), []

    def chat(c: int) -> None:
        messages = [{"role": "system", "content": f"You are assistant number {c}. Be brief."}]
        try:
            for k in range(1, turns + 1):
                letter = "ABCDEFGHIJKLMNOPRSTW"[(c * 7 + k) % 20]
                messages.append({"role": "user", "content": QUESTION.format(k=k, letter=letter)})
                answer, figures = turn(url, model, messages, n_predict)
                messages.append({"role": "assistant", "content": answer})
                with lock:
                    results[k].append(figures)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(c,)) for c in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
