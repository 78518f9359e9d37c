"""Sampling inside ``llama_decode`` (``llama_set_sampler``) gives the tokens CPU sampling gives,
for greedy and seeded chains, side by side with chains that must stay on the CPU."""

from __future__ import annotations

import asyncio

from runner.engine import Engine
from runner.llama import silence_llama_logs
from runner.settings import RunnerSettings
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.runner.conftest import collect, request

REQUESTS = {
    "greedy": request(num_predict=12, temperature=0.0),
    "seeded": request(num_predict=12, temperature=0.8, top_k=40, top_p=0.9, seed=7),
    "penalised": request(num_predict=12, temperature=0.0, repeat_penalty=1.3),  # CPU only
}


async def _answers(model_path: str, backend: bool) -> dict[str, list[int]]:
    silence_llama_logs()
    engine = Engine(RunnerSettings(model=model_path, ctx_size=512, parallel=3, threads=2,
                                   backend_sampling=backend))
    await engine.start()
    try:
        dones = await asyncio.gather(*(collect(engine, r) for r in REQUESTS.values()))
        logprob_req = pb.GenerateRequest()
        logprob_req.CopyFrom(REQUESTS["greedy"])
        logprob_req.logprobs = True  # needs the logits: stays on the CPU
        _, with_logprobs = await collect(engine, logprob_req)
    finally:
        await engine.stop()
    out = {name: list(done.context)[-done.eval_count:] for name, (_, done) in
           zip(REQUESTS, dones)}
    out["logprobs"] = list(with_logprobs.context)[-with_logprobs.eval_count:]
    return out


async def test_backend_sampling_gives_the_cpu_tokens(model_path):
    on, off = await _answers(model_path, True), await _answers(model_path, False)
    assert on == off
    assert all(len(tokens) == 12 for tokens in on.values())
    assert on["greedy"] == on["logprobs"]
