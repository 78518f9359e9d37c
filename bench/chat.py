"""Multi-turn chat: prompt evaluation per turn, turns 1 to N, while conversations share slots.

``conversations`` chats run side by side on a server with that many slots; each sends turn k
with the whole history (its earlier questions and the server's answers), as chat clients do. A
server that keeps each conversation's KV cache (slot chosen by longest common prefix, as both
Corral and llama-server do) evaluates only the new tokens, so turn k's prompt-eval time stays
flat although the prompt grows. Reported per turn: the median of the servers' own prompt-eval
time and prompt tokens evaluated (Corral: ``prompt_eval_duration``/``prompt_eval_count``;
llama-server: ``timings.prompt_ms``/``prompt_n``), and the prompt's full length in tokens.
"""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlsplit

QUESTION = "Turn {k}: name one animal that starts with the letter {letter}, in one short sentence."


def _post(url: str, path: str, body: dict) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {path}: {resp.status} {data[:200]!r}")
        return json.loads(data)
    finally:
        conn.close()


def corral_turn(url: str, model: str, messages: list[dict], n_predict: int) -> tuple[str, dict]:
    reply = _post(url, "/api/chat", {"model": model, "messages": messages, "stream": False,
                                     "options": {"temperature": 0, "seed": 0,
                                                 "num_predict": n_predict}})
    return reply["message"]["content"], {
        "ms": reply["prompt_eval_duration"] / 1e6, "evaluated": reply["prompt_eval_count"]}


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
        except Exception as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(c,)) for c in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
