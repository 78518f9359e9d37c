"""Context shift: a generation that fills its slot goes on (Ollama's default), or ends."""

from __future__ import annotations

from runner.engine import Engine
from runner.llama import silence_llama_logs
from runner.settings import RunnerSettings
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.runner.conftest import collect

COUNTING = "1, 2, 3, 4, 5,"


async def test_a_full_slot_shifts_and_generation_goes_on(model_path: str) -> None:
    silence_llama_logs()
    engine = Engine(RunnerSettings(model=model_path, ctx_size=64, threads=2))
    await engine.start()
    try:
        def req(**fields) -> pb.GenerateRequest:
            fields = {"num_predict": 150, **fields}
            return pb.GenerateRequest(prompt=COUNTING, num_keep=4,
                                      sampling=pb.SamplingOptions(temperature=0), **fields)

        text, done = await collect(engine, req())
        assert done.eval_count == 150 and done.done_reason == pb.DONE_REASON_LENGTH
        assert len(done.context) > 64  # prompt + output outgrew the slot twice over
        assert text.strip()

        short, done = await collect(engine, req(shift=False))
        assert done.done_reason == pb.DONE_REASON_LENGTH
        # the whole prompt plus the output filled the 64 cells; the last token sampled needs none
        assert done.eval_count + done.prompt_eval_count == 64 + 1 < 150
        assert text.startswith(short)  # same greedy answer until the slot was full

        # the slot is usable afterwards: the next request reuses what it can and runs normally
        again, _ = await collect(engine, req(num_predict=5))
        assert short.startswith(again)
    finally:
        await engine.stop()
