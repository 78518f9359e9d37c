"""Typed clients: how fast they notice a sibling process that has just come up."""

import asyncio
import time
from pathlib import Path

from services.clients.runner import RunnerClient
from services.grpc_server import GrpcService


async def test_a_runner_listening_late_is_seen_ready_without_the_default_1s_backoff(
        tmp_path: Path) -> None:
    # The gateway starts polling before the runner's socket exists. With gRPC's default
    # reconnect backoff (1 s ± 20%) readiness would be seen ≥ 0.8 s after the runner listens;
    # cold start would pay that second every time.
    target = f"unix:{tmp_path / 'runner.sock'}"
    client = RunnerClient(target)
    waiting = asyncio.create_task(client.wait_ready(timeout=10.0))
    await asyncio.sleep(0.3)  # several failed connection attempts
    assert not waiting.done()
    service = GrpcService(target, ["corral.runner.v1.Runner"])
    await service.start()
    await service.set_serving(True)
    listening = time.monotonic()
    try:
        await waiting
        assert time.monotonic() - listening < 0.7
    finally:
        await client.close()
        await service.stop(0)
