"""``shift`` through real processes: a generation longer than ``num_ctx`` goes on by shifting
the context (Ollama's default) and stops at the window with ``shift: false``."""

from __future__ import annotations

import pytest

from tests.e2e.server import CorralServer

pytestmark = pytest.mark.e2e


def generate(corral: CorralServer, **extra) -> dict:
    status, body = corral.post("/api/generate", {
        "model": "smollm2:135m", "prompt": "1, 2, 3, 4, 5,", "raw": True, "stream": False,
        "options": {"temperature": 0, "num_ctx": 96, "num_predict": 160}, **extra})
    assert status == 200, body
    return body


def test_generation_outlives_the_context_window_unless_shift_is_off(corral: CorralServer) -> None:
    # a runner loaded earlier with a bigger window would serve num_ctx 96 without reloading
    assert corral.post("/api/generate", {"model": "smollm2:135m", "keep_alive": 0})[0] == 200
    shifted = generate(corral)
    assert shifted["eval_count"] == 160 and shifted["done_reason"] == "length"
    stopped = generate(corral, shift=False, keep_alive=0)
    assert stopped["done_reason"] == "length"
    assert stopped["eval_count"] < 96
    assert shifted["response"].startswith(stopped["response"])


def test_shift_must_be_a_boolean(corral: CorralServer) -> None:
    status, body = corral.post("/api/generate", {"model": "smollm2:135m", "prompt": "x",
                                                 "shift": "yes"})
    assert status == 400 and "shift" in body["error"]
