"""The token loop in-process against the real SmolLM2 model."""

from __future__ import annotations

import ast
import asyncio
import json
import threading
from pathlib import Path

import pytest

from runner.engine import Engine
from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.runner.conftest import CHAT_PROMPT, collect, request


async def test_greedy_is_deterministic(engine: Engine) -> None:
    first, done = await collect(engine, request(temperature=0.0))
    second, _ = await collect(engine, request(temperature=0.0))
    assert first and first == second
    assert done.done_reason in (pb.DONE_REASON_STOP, pb.DONE_REASON_LENGTH)


async def test_same_seed_same_text(engine: Engine) -> None:
    first, _ = await collect(engine, request(seed=7, temperature=0.9))
    second, _ = await collect(engine, request(seed=7, temperature=0.9))
    assert first == second


async def test_num_predict_ends_with_length(engine: Engine) -> None:
    _, done = await collect(engine, request(num_predict=5, temperature=0.0))
    assert done.done_reason == pb.DONE_REASON_LENGTH
    assert done.eval_count == 5
    assert done.prompt_eval_count > 0 and done.eval_duration_ns > 0
    assert len(done.context) == done.prompt_eval_count + 5


async def test_stop_string_never_appears(engine: Engine) -> None:
    full, _ = await collect(engine, request(num_predict=40, temperature=0.0))
    words = full.split()
    stop = words[len(words) // 2]
    text, done = await collect(engine, request(num_predict=40, temperature=0.0, stop=(stop,)))
    assert stop not in text
    assert full.startswith(text)
    assert done.done_reason == pb.DONE_REASON_STOP


async def test_concurrent_slots_match_solo_runs(engine: Engine) -> None:
    seeds = (11, 22, 33)
    solo = [await collect(engine, request(seed=s, temperature=0.9)) for s in seeds]
    together = await asyncio.gather(*(collect(engine, request(seed=s, temperature=0.9))
                                      for s in seeds))
    assert [text for text, _ in together] == [text for text, _ in solo]


async def test_cancel_frees_slot_within_a_few_tokens(engine: Engine) -> None:
    generation = await engine.generate(request(num_predict=500, temperature=0.0))
    stream = generation.stream()
    await anext(stream)
    generation.cancel()
    await stream.aclose()
    tokens_at_cancel = generation.stats.eval_count
    for _ in range(100):
        if generation.finished:
            break
        await asyncio.sleep(0.01)
    assert generation.finished
    assert generation.stats.eval_count - tokens_at_cancel <= 3
    _, done = await collect(engine, request(num_predict=3))  # the runner still serves
    assert done.eval_count == 3


async def test_prefix_reuse_skips_shared_history(engine: Engine) -> None:
    history = CHAT_PROMPT + "Once upon a time there was a cat called Tom. " * 20
    _, first = await collect(engine, request(history, num_predict=2))
    generation = await engine.generate(request(history + "The end.", num_predict=2))
    second = [r async for r in generation.stream()][-1].done
    assert first.prompt_eval_count > 200
    assert generation.stats.reused_tokens > 200  # only the new tail was evaluated
    # prompt_eval_count is the whole prompt, cached part included, as Ollama reports it
    assert second.prompt_eval_count == len(generation.prompt) > first.prompt_eval_count


async def test_the_same_prompt_twice_reports_the_same_prompt_eval_count(engine: Engine) -> None:
    _, first = await collect(engine, request(num_predict=2, temperature=0.0))
    _, second = await collect(engine, request(num_predict=2, temperature=0.0))
    assert first.prompt_eval_count == second.prompt_eval_count > 10


async def test_prompt_longer_than_context_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="context window"):
        await engine.generate(request("word " * 2000))


async def test_bad_grammar_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="grammar"):
        await engine.generate(pb.GenerateRequest(prompt="x", grammar="root ::= ("))


async def test_grammar_constrains_output(engine: Engine) -> None:
    req = request(num_predict=10, temperature=0.0)
    req.grammar = 'root ::= ("yes" | "no")'
    text, done = await collect(engine, req)
    assert text in ("yes", "no")
    assert done.done_reason == pb.DONE_REASON_STOP


async def test_context_continuation(engine: Engine) -> None:
    _, first = await collect(engine, request(num_predict=4, temperature=0.0))
    req = pb.GenerateRequest(prompt=" more", context=first.context, num_predict=2)
    _, second = await collect(engine, req)
    assert list(second.context[:len(first.context)]) == list(first.context)


async def test_embed_needs_embedding_mode(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="does not support embeddings"):
        await engine.embed(pb.EmbedRequest(inputs=["hi"]))


async def test_tokenize_round_trip(engine: Engine) -> None:
    tokens = await engine.tokenize("Hello <|im_end|>", add_special=False, parse_special=True)
    assert await engine.detokenize(tokens) == "Hello <|im_end|>"


async def test_embeddings_one_vector_per_input(model_path: str) -> None:
    from runner.settings import RunnerSettings

    engine = Engine(RunnerSettings(model=model_path, ctx_size=256, threads=2, embedding=True))
    await engine.start()
    try:
        reply = await engine.embed(pb.EmbedRequest(inputs=["hello world", "a cat", "hello world"]))
        with pytest.raises(InvalidRequestError, match="cannot generate"):
            await engine.generate(request())
    finally:
        await engine.stop()
    vectors = [list(e.values) for e in reply.embeddings]
    assert len(vectors) == 3 and len(vectors[0]) > 0
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    assert reply.prompt_eval_count > 3


async def test_decode_failure_fails_the_request_not_the_runner(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.errors import CorralError

    def broken(batch) -> None:
        raise CorralError("llama_decode failed with status -3")

    monkeypatch.setattr(engine.batch_loop.model, "decode", broken)
    with pytest.raises(CorralError, match="llama_decode failed"):
        await collect(engine, request(num_predict=3))
    monkeypatch.undo()
    _, done = await collect(engine, request(num_predict=3))
    assert done.eval_count == 3


async def test_named_schemas_constrain_json_inside_markup(engine: Engine) -> None:
    req = request(num_predict=40, temperature=0.0)
    req.grammar = 'root ::= "<call>" args "</call>"'
    req.grammar_schemas["args"] = ('{"type":"object","properties":{"n":{"type":"integer"}},'
                                   '"required":["n"]}')
    text, done = await collect(engine, req)
    assert text.startswith("<call>") and text.endswith("</call>")
    assert isinstance(json.loads(text[len("<call>"):-len("</call>")])["n"], int)


async def test_a_generation_prepared_for_a_caller_that_left_is_freed_by_the_loop(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    prepared = []
    prepare = engine.prepare

    def slow_prepare(req: pb.GenerateRequest):
        entered.set()
        release.wait(30)
        prepared.append(prepare(req))
        finished.set()
        return prepared[-1]

    monkeypatch.setattr(engine, "prepare", slow_prepare)
    caller = asyncio.create_task(engine.generate(request()))
    assert await asyncio.to_thread(entered.wait, 30)
    caller.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await asyncio.to_thread(finished.wait, 30)  # preparing ends after the caller left

    async def frames() -> list[pb.GenerateResponse]:
        return [response async for response in prepared[0].stream()]

    done = (await asyncio.wait_for(frames(), 30))[-1].done
    assert done.done_reason == pb.DONE_REASON_CANCELLED
    assert prepared[0].sampler.chain is None  # freed, on the inference thread


def test_the_facade_reaches_llama_only_through_the_batch_loop() -> None:
    tree = ast.parse((Path(__file__).resolve().parents[2] / "runner" / "engine.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert "runner.batch_loop" in imported
    assert not imported & {"llama_cpp", "runner.llama", "runner.sampling"}
