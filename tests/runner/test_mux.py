"""``GenerateStream`` on a real runner process: one message per step for every generation,
errors and cancels per generation, and the gateway's client (``GenerationMux``) over it."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.clients.runner import RunnerClient
from services.errors import InvalidRequestError, RunnerUnavailableError
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.runner.runner_process import events, spawn, stop

pytestmark = pytest.mark.e2e

GREEDY = pb.SamplingOptions(temperature=0.0)


@pytest.fixture
def runner(model_path: str, tmp_path: Path) -> Iterator[tuple[object, Path]]:
    socket = tmp_path / "runner.sock"
    process = spawn(model_path, socket, "--parallel", "3")
    yield process, socket
    stop(process)


@pytest.fixture
async def client(runner) -> AsyncIterator[RunnerClient]:
    client = RunnerClient(f"unix:{runner[1]}")
    await client.wait_ready(30)
    yield client
    await client.close()


def start(gen_id: int, prompt: str, num_predict: int, request_id: str = "") -> pb.GenerateStreamRequest:
    return pb.GenerateStreamRequest(start=pb.StartGeneration(
        id=gen_id, request_id=request_id,
        request=pb.GenerateRequest(prompt=prompt, num_predict=num_predict, sampling=GREEDY)))


async def test_one_message_per_step_carries_every_generation(client: RunnerClient) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for i in (1, 2, 3):
        queue.put_nowait(start(i, f"[{i}] Count: 1, 2, 3,", 12))
    too_long = "word " * 5000
    queue.put_nowait(start(4, too_long, 4))

    async def requests():
        while (message := await queue.get()) is not None:
            yield message

    call = client._stub.GenerateStream(requests())
    per_id = collections.defaultdict(list)
    messages = 0
    async for response in call:
        messages += 1
        for event in response.events:
            per_id[event.id].append(event)
        if all(per_id[i] and per_id[i][-1].WhichOneof("event") in ("done", "error")
               for i in (1, 2, 3, 4)):
            break
    queue.put_nowait(None)
    for i in (1, 2, 3):
        kinds = [e.WhichOneof("event") for e in per_id[i]]
        assert kinds[-1] == "done" and set(kinds[:-1]) == {"chunk"}
        assert per_id[i][-1].done.eval_count == 12
        assert sum(e.chunk.token_count for e in per_id[i][:-1]) == 12
    (error,) = per_id[4]
    assert error.error.error_type == "InvalidRequestError"
    assert "does not fit the context window" in error.error.message
    chunks = sum(len(per_id[i]) - 1 for i in (1, 2, 3))
    assert messages < chunks  # several generations' tokens travel in one message


async def test_client_generations_errors_and_cancel(runner, client: RunnerClient) -> None:
    request = pb.GenerateRequest(prompt="Once upon a time", num_predict=6, sampling=GREEDY)
    first, second = await asyncio.gather(*(_collect(client.generate(request)) for _ in range(2)))
    def text(events):
        return "".join(e.chunk.text for e in events if e.HasField("chunk"))

    assert text(first) == text(second) and first[-1].done.eval_count == 6
    with pytest.raises(InvalidRequestError, match="does not fit"):
        await _collect(client.generate(pb.GenerateRequest(prompt="word " * 5000)))
    from services.context import bind_request_id
    bind_request_id("req-mux-cancel")
    stream = client.generate(pb.GenerateRequest(prompt="Once upon a time", num_predict=400))
    await anext(stream)
    await stream.aclose()  # the consumer left: the generation is cancelled in the runner
    again = await _collect(client.generate(pb.GenerateRequest(prompt="Hi", num_predict=2)))
    assert again[-1].done.eval_count == 2
    await asyncio.sleep(0.3)
    cancelled = [e for e in events(runner[1]) if e["event"] == "generation_cancelled"]
    assert cancelled and cancelled[-1]["request_id"] == "req-mux-cancel"
    assert cancelled[-1]["eval_count"] < 100


async def test_a_dead_runner_fails_every_generation(runner, client: RunnerClient) -> None:
    stream = client.generate(pb.GenerateRequest(prompt="Once upon a time", num_predict=400))
    await anext(stream)
    runner[0].kill()
    with pytest.raises(RunnerUnavailableError):
        async for _ in stream:
            pass


async def _collect(stream) -> list:
    return [event async for event in stream]
