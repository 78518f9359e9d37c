"""Images meet the throughput work: sampling inside ``llama_decode`` and ``GenerateStream``.

An image request's sampler is attached to its slot like a text request's; the image's own
decode (mtmd writing embeddings, no outputs) happens between two engine steps, so the
in-graph sampler only ever sees the text positions. These tests hold that to the CPU's tokens,
and carry image requests over the multiplexed stream next to text ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_cpp import llama_cpp

from runner.engine import Engine
from runner.llama import silence_llama_logs
from runner.settings import RunnerSettings
from services.clients.runner import RunnerClient
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.runner.conftest import collect
from tests.runner.runner_process import spawn, stop
from tests.vlm import BLUE, RED, image_bytes, make_tiny_vlm

PROMPT = "<|im_start|>user\n[img-0]What is in this picture?<|im_end|>\n<|im_start|>assistant\n"
TEXT = "<|im_start|>user\nTell me about cats.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_vlm(tmp_path_factory.mktemp("vlm"))


def ask(prompt: str, *images: bytes, **sampling: float) -> pb.GenerateRequest:
    return pb.GenerateRequest(prompt=prompt, images=list(images), num_predict=10,
                              parse_special=True, sampling=pb.SamplingOptions(**sampling))


REQUESTS = {
    "image greedy": ask(PROMPT, image_bytes(RED), temperature=0.0),
    "image seeded": ask(PROMPT, image_bytes(BLUE), temperature=0.8, top_k=40, seed=11),
    "two images": ask("[img-0] and [img-1]: which?", image_bytes(RED), image_bytes(BLUE),
                      temperature=0.0),
    "text": ask(TEXT, temperature=0.0),
}


async def _answers(vlm: Path, backend: bool, monkeypatch: pytest.MonkeyPatch
                   ) -> tuple[dict[str, list[int]], int]:
    """Every request's generated tokens, all in flight together, and how many tokens the CPU
    sampled (``llama_sampler_sample`` calls)."""
    cpu_samples = 0
    original = llama_cpp.llama_sampler_sample

    def counting(*args):
        nonlocal cpu_samples
        cpu_samples += 1
        return original(*args)

    silence_llama_logs()
    engine = Engine(RunnerSettings(model=str(vlm / "model.gguf"), ctx_size=512,
                                   parallel=len(REQUESTS), threads=2,
                                   projector=str(vlm / "mmproj.gguf"), backend_sampling=backend))
    await engine.start()
    monkeypatch.setattr(llama_cpp, "llama_sampler_sample", counting)
    try:
        dones = await asyncio.gather(*(collect(engine, r) for r in REQUESTS.values()))
    finally:
        monkeypatch.setattr(llama_cpp, "llama_sampler_sample", original)
        await engine.stop()
    return ({name: list(done.context)[-done.eval_count:]
             for name, (_, done) in zip(REQUESTS, dones)}, cpu_samples)


async def test_image_requests_sample_in_the_graph_and_match_the_cpu(
        vlm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_graph, cpu_calls_on = await _answers(vlm, True, monkeypatch)
    on_cpu, cpu_calls_off = await _answers(vlm, False, monkeypatch)
    assert in_graph == on_cpu
    assert all(len(tokens) == 10 for tokens in in_graph.values())
    assert in_graph["image greedy"] != in_graph["two images"]
    assert cpu_calls_on == 0  # every chain here runs in the graph, image requests included
    assert cpu_calls_off == 4 * 10


@pytest.mark.e2e
async def test_image_requests_share_the_generate_stream_with_text(vlm: Path,
                                                                  tmp_path: Path) -> None:
    """Through a real runner: the multiplexed stream and a ``Generate`` call of its own give
    an image request the same answer while text generations run beside it."""
    socket = tmp_path / "runner.sock"
    process = spawn(str(vlm / "model.gguf"), socket, "--parallel", "3",
                    "--mmproj", str(vlm / "mmproj.gguf"))
    client = RunnerClient(f"unix:{socket}")
    try:
        await client.wait_ready(60)
        image = REQUESTS["image greedy"]

        async def over(stream) -> tuple[str, pb.Done]:
            text, done = [], None
            async for item in stream:
                if item.HasField("chunk"):
                    text.append(item.chunk.text)
                else:
                    done = item.done
            return "".join(text), done

        results = await asyncio.gather(
            over(client.generate(REQUESTS["text"])), over(client.generate(image)),
            over(client.generate(REQUESTS["two images"])))
        alone = await over(client.generate_call(image))
    finally:
        await client.close()
        stop(process)
    (_, text_done), (muxed, image_done), (_, two_done) = results
    assert muxed == alone[0] and image_done.eval_count == 10
    assert text_done.eval_count == 10 and two_done.eval_count == 10
    assert image_done.prompt_eval_count == alone[1].prompt_eval_count
