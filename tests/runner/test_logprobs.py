"""Log-probabilities from the engine: one per emitted token, from the model's distribution."""

from __future__ import annotations

import math

from runner.engine import Engine
from tests.runner.conftest import request


async def logprob_chunks(engine: Engine, **fields) -> tuple[str, list]:
    req = request(num_predict=12, temperature=0)
    for name, value in fields.items():
        setattr(req, name, value)
    generation = await engine.generate(req)
    text, entries = [], []
    async for response in generation.stream():
        if response.HasField("chunk"):
            text.append(response.chunk.text)
            entries += response.chunk.logprobs
    return "".join(text), entries


async def test_each_token_comes_with_its_logprob_and_the_top_alternatives(engine: Engine) -> None:
    text, entries = await logprob_chunks(engine, logprobs=True, top_logprobs=3)
    assert len(entries) == 12
    assert b"".join(e.piece for e in entries).decode() == text
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top) == 3
        tops = [t.logprob for t in entry.top]
        assert tops == sorted(tops, reverse=True)
        assert sum(math.exp(t) for t in tops) <= 1 + 1e-6
        # greedy decoding picks the likeliest token
        assert entry.top[0].token == entry.token
        assert math.isclose(entry.top[0].logprob, entry.logprob, abs_tol=1e-5)
        assert all(not t.top for t in entry.top)


async def test_logprobs_only_when_asked(engine: Engine) -> None:
    text, entries = await logprob_chunks(engine)
    assert text and entries == []
    _text, entries = await logprob_chunks(engine, logprobs=True)
    assert entries and all(not e.top for e in entries)
