"""``corral serve``: start the registry and the gateway as child processes and supervise them.

The launcher owns no model state; it only keeps its two children alive: a child that exits on
its own is restarted with exponential backoff, and SIGINT/SIGTERM stop the gateway first (which
stops its runners) and then the registry.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import structlog

from services.grpc_server import stop_event_on_signals

log = structlog.get_logger()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 10.0
MAX_BACKOFF_S = 30.0
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: have the kernel SIGTERM this child when its parent dies (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def child_environment(env: Mapping[str, str], runtime_dir: Path) -> dict[str, str]:
    """The children's environment: the caller's, plus a registry address both agree on."""
    child = dict(env)
    if not child.get("CORRAL_REGISTRY_ADDR"):
        # A private unix socket: a fixed TCP port collides when several servers share a machine,
        # and a "free" port picked here can be taken (even by our own gateway) before it is bound.
        child["CORRAL_REGISTRY_ADDR"] = f"unix:{runtime_dir / 'registry.sock'}"
    paths = [str(PROJECT_ROOT), *filter(None, child.get("PYTHONPATH", "").split(os.pathsep))]
    child["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return child


class Child:
    """One supervised child process (``python -m <module>``)."""

    def __init__(self, module: str, env: Mapping[str, str]) -> None:
        self.module = module
        self.env = dict(env)
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, env=self.env, cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent)
        log.info("child_started", module=self.module, pid=self.process.pid)

    async def supervise(self, stopping: asyncio.Event) -> None:
        """Restart the child whenever it exits, until ``stopping`` is set."""
        while not stopping.is_set():
            assert self.process is not None, "supervise() runs after start()"
            returncode = await self.process.wait()
            if stopping.is_set():
                return
            self.restarts += 1
            delay = min(MAX_BACKOFF_S, 0.5 * 2 ** min(self.restarts, 6))
            log.warning("child_exited", module=self.module, returncode=returncode, restart_in_s=delay)
            try:
                await asyncio.wait_for(stopping.wait(), delay)
                return
            except TimeoutError:
                await self.start()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.warning("child_killed", module=self.module, pid=self.process.pid)
            self.process.kill()
            await self.process.wait()
        log.info("child_stopped", module=self.module, returncode=self.process.returncode)


async def serve(env: Mapping[str, str]) -> int:
    """Run registry + gateway until SIGINT/SIGTERM; return the exit status."""
    stopping = stop_event_on_signals()
    with tempfile.TemporaryDirectory(prefix="corral-serve-") as runtime_dir:
        return await _serve(child_environment(env, Path(runtime_dir)), stopping)


async def _serve(child_env: Mapping[str, str], stopping: asyncio.Event) -> int:
    registry, gateway = Child("registry", child_env), Child("gateway", child_env)
    await registry.start()
    await gateway.start()
    supervisors = [asyncio.create_task(c.supervise(stopping)) for c in (registry, gateway)]
    await stopping.wait()
    log.info("serve_stopping")
    await gateway.stop()
    await registry.stop()
    await asyncio.gather(*supervisors, return_exceptions=True)
    return 0
