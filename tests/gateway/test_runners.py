"""RunnerProcess's stderr relay: a runner's log lines reach the gateway's log, whatever they are."""

from __future__ import annotations

import asyncio
import sys

from gateway.runners import RunnerProcess, RunnerSpec

NOISY = """
import sys
sys.stderr.write("x" * 5000 + "\\n")
sys.stderr.write("after the long line\\n")
sys.stderr.flush()
"""


async def test_a_line_over_the_reader_limit_does_not_stop_the_relay(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NOISY, stderr=asyncio.subprocess.PIPE, limit=1024)
    spec = RunnerSpec(model_name="m", model_path="/m.gguf", socket_path=tmp_path / "r.sock",
                      ctx_size=8, parallel=1, threads=1)
    runner = RunnerProcess(process, spec)
    try:
        assert await asyncio.wait_for(runner.wait(), 10) == 0
    finally:
        await runner.client.close()
    assert list(runner.stderr_tail)[-1] == "after the long line"
