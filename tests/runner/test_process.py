"""The real ``python -m runner`` process on a unix socket, driven through the generated stub."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from services.grpc_server import wait_for_serving
from services.pb.corral.runner.v1 import runner_pb2 as pb
from services.pb.corral.runner.v1 import runner_pb2_grpc
from tests.runner.runner_process import events, spawn, stop

pytestmark = pytest.mark.e2e


@pytest.fixture
def runner(model_path: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    socket = tmp_path / "runner.sock"
    process = spawn(model_path, socket)
    yield process, socket
    stop(process)


@pytest.fixture
async def stub(runner: tuple[subprocess.Popen, Path]) -> AsyncIterator[runner_pb2_grpc.RunnerStub]:
    _, socket = runner
    async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
        await wait_for_serving(channel, timeout=30)
        yield runner_pb2_grpc.RunnerStub(channel)


async def test_generate_streams_chunks_then_one_done(stub: runner_pb2_grpc.RunnerStub) -> None:
    responses = [r async for r in stub.Generate(pb.GenerateRequest(
        prompt="The sky is", num_predict=8, sampling=pb.SamplingOptions(temperature=0.0)))]
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert set(kinds[:-1]) == {"chunk"}
    done = responses[-1].done
    assert done.eval_count == sum(r.chunk.token_count for r in responses[:-1]) or \
        done.done_reason == pb.DONE_REASON_STOP


async def test_cancelled_call_frees_the_slot(runner: tuple[subprocess.Popen, Path],
                                             stub: runner_pb2_grpc.RunnerStub) -> None:
    call = stub.Generate(pb.GenerateRequest(prompt="Once upon a time", num_predict=400),
                         metadata=(("x-request-id", "req-cancel"),))
    await call.read()
    call.cancel()
    reply = [r async for r in stub.Generate(pb.GenerateRequest(prompt="Hi", num_predict=2))]
    assert reply[-1].done.eval_count == 2  # the single slot was free again
    await asyncio.sleep(0.2)
    cancelled = [e for e in events(runner[1]) if e["event"] == "generation_cancelled"]
    assert cancelled and cancelled[0]["request_id"] == "req-cancel"
    assert cancelled[0]["eval_count"] < 50


async def test_load_progress_is_logged(runner: tuple[subprocess.Popen, Path],
                                      stub: runner_pb2_grpc.RunnerStub) -> None:
    names = [e["event"] for e in events(runner[1])]
    assert "model_load_progress" in names  # output while loading restarts the gateway's stall timer
    assert names.index("model_load_progress") < names.index("model_loaded")


async def test_tokenize_detokenize_round_trip(stub: runner_pb2_grpc.RunnerStub) -> None:
    text = "Hello, world!"
    tokens = (await stub.Tokenize(pb.TokenizeRequest(text=text, parse_special=True))).tokens
    assert tokens
    assert (await stub.Detokenize(pb.DetokenizeRequest(tokens=tokens))).text == text


async def test_info_and_error_status(stub: runner_pb2_grpc.RunnerStub) -> None:
    info = await stub.Info(pb.InfoRequest())
    assert info.n_ctx_per_slot == 512 and info.n_parallel == 1 and info.pid > 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Embed(pb.EmbedRequest(inputs=["x"]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("corral-error", "InvalidRequestError") in tuple(caught.value.trailing_metadata())


async def test_exits_on_sigterm(runner: tuple[subprocess.Popen, Path],
                                stub: runner_pb2_grpc.RunnerStub) -> None:
    process, socket = runner
    assert stop(process) == 0
    assert not socket.exists()


def test_exits_when_parent_dies(model_path: str, tmp_path: Path) -> None:
    parent = subprocess.Popen(["sleep", "60"])
    process = spawn(model_path, tmp_path / "runner.sock", "--parent-pid", str(parent.pid))
    try:
        time.sleep(1.0)
        assert process.poll() is None
        parent.kill()
        parent.wait()
        process.wait(timeout=10)
    finally:
        parent.kill()
        stop(process)
    assert process.returncode == 0
