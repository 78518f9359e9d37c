"""The runner process: serve one GGUF model over gRPC on a unix socket (``python -m runner``).

Start-up order lets the gateway watch the load: the server listens first with health
NOT_SERVING, the inference thread loads the model, then health flips to SERVING. SIGTERM/SIGINT
(or the death of ``--parent-pid``) flip it back, stop the server with a grace period and free
llama.cpp's resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import signal
import sys
import time

import structlog

from runner.engine import Engine
from runner.llama import silence_llama_logs
from runner.server import SERVICE_NAME, add_to_server
from runner.settings import RunnerSettings, parse_args
from services.grpc_server import GrpcService, stop_event_on_signals
from services.logging import configure_logging
from services.tracing import setup_tracing

log = structlog.get_logger()

SHUTDOWN_GRACE_S = 5.0
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    configure_logging("runner", debug=settings.debug, json=True)
    setup_tracing("runner", grpc_server=True)
    if not settings.debug:
        silence_llama_logs()
    return asyncio.run(serve(settings))


async def serve(settings: RunnerSettings) -> int:
    """Run until a stop signal; the exit status is 1 when the model failed to load."""
    stop = stop_event_on_signals()
    watcher = _watch_parent(settings.parent_pid, stop) if settings.parent_pid else None
    engine = Engine(settings)
    service = GrpcService(settings.address, [SERVICE_NAME])
    add_to_server(service.server, engine)
    await service.start()
    log.info("runner_started", pid=os.getpid(), **dataclasses.asdict(settings))
    loaded = False
    try:
        loaded = await _load(engine, stop)
        if loaded:
            await service.set_serving(True)
            await stop.wait()
    finally:
        await service.stop(SHUTDOWN_GRACE_S)
        if loaded:
            await engine.stop()
        if watcher is not None:
            watcher.cancel()
        with contextlib.suppress(OSError):
            os.unlink(settings.socket)
        log.info("runner_stopped")
    return 0 if loaded or stop.is_set() else 1


async def _load(engine: Engine, stop: asyncio.Event) -> bool:
    """Load the model unless a stop comes first; False when it failed or was abandoned."""
    started = time.perf_counter_ns()
    load = asyncio.create_task(engine.start())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({load, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not load.done():  # the daemon inference thread dies with the process
        return False
    if load.exception() is not None:
        log.error("model_load_failed", model=engine.settings.model, error=str(load.exception()))
        return False
    info = engine.info()  # what llama.cpp really got, not only what was asked for
    log.info("model_loaded", model=engine.settings.model,
             load_duration_ms=round((time.perf_counter_ns() - started) / 1e6, 1),
             n_threads=info.n_threads, n_batch=info.n_batch, kv_cache_type=info.kv_cache_type,
             load_mode=info.load_mode, flash_attention=info.flash_attention)
    return True


def _watch_parent(pid: int, stop: asyncio.Event) -> asyncio.Task[None]:
    """Set ``stop`` when process ``pid`` is gone: a poll, plus PDEATHSIG if it is our parent."""
    if pid == os.getppid() and sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return asyncio.create_task(_poll_parent(pid, stop))


async def _poll_parent(pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if not _alive(pid):
            log.warning("parent_exited", parent_pid=pid)
            stop.set()
            return
        await asyncio.sleep(PARENT_POLL_S)


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != b"Z"
