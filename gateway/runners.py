"""One runner subprocess: spawn it, relay its logs, wait for it to load, stop it.

The scheduler only sees ``RunnerProcess``'s small surface (``pid``, ``client``, ``wait``,
``wait_ready``, ``stop``, ``exit_cause``), so tests swap in a fake through the spawn factory.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog
from structlog.typing import FilteringBoundLogger

from gateway.clock import SystemClock
from gateway.load_options import AUTO, DEFAULT_BATCH, LoadOptions
from gateway.model_ref import ModelRef
from gateway.clock import Clock
from services.clients.runner import RunnerClient
from services.errors import RunnerCrashedError, RunnerUnavailableError
from services.settings import GatewaySettings

log = structlog.get_logger()

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 5.0
STDERR_TAIL_LINES = 20
_CAUSE_LINES = 5
_POLL_S = 0.25
_FIELDS_DROPPED = ("timestamp", "level", "event")


@dataclass(frozen=True)
class RunnerSpec:
    """Everything a runner is started with (it reads nothing from the gateway's environment)."""

    model_name: str
    model_path: str
    socket_path: Path
    ctx_size: int  # per slot
    parallel: int
    threads: int
    debug: bool = False
    embedding: bool = False  # serve Embed instead of Generate
    adapters: tuple[str, ...] = ()  # LoRA adapter files, applied at scale 1
    projector: str = ""  # multimodal projector file: the model then takes images
    batch_size: int = DEFAULT_BATCH  # num_batch: tokens per llama_decode call
    use_mmap: bool = True  # map the GGUF (False: read it into memory)
    use_mlock: bool = False  # lock the weights in RAM
    flash_attention: str = "auto"  # auto (llama.cpp decides), on, off
    kv_cache_type: str = "f16"  # f16, q8_0, q4_0 (what was asked; the runner reports what it got)
    profile: bool = False  # log per-step phase timings (CORRAL_PROFILE_STEPS)
    cpu_sampling: bool = False  # never sample inside llama_decode (CORRAL_CPU_SAMPLING)
    stream_interval_ms: int = 0  # least time between output hand-offs (CORRAL_STREAM_INTERVAL_MS)

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "runner", "--model", self.model_path,
                "--socket", str(self.socket_path), "--ctx-size", str(self.ctx_size),
                "--parallel", str(self.parallel), "--threads", str(self.threads),
                "--batch-size", str(self.batch_size), "--flash-attn", self.flash_attention,
                "--cache-type", self.kv_cache_type, "--parent-pid", str(os.getpid())]
        for adapter in self.adapters:
            args += ["--lora", adapter]
        args += ["--mmproj", self.projector] if self.projector else []
        args += ["--no-mmap"] if not self.use_mmap else []
        args += ["--mlock"] if self.use_mlock else []
        args += ["--embedding"] if self.embedding else []
        args += ["--profile"] if self.profile else []
        args += ["--cpu-sampling"] if self.cpu_sampling else []
        args += ["--stream-interval-ms", str(self.stream_interval_ms)]
        return args + ["--debug"] if self.debug else args


class SpecMaker:
    """Builds each runner's ``RunnerSpec``; owns the directory of runner sockets."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._ids = itertools.count(1)
        self._dir: Path | None = None
        self._own_dir = False

    def make(self, model: ModelRef, num_ctx: int, *, embedding: bool = False,
             load: LoadOptions = AUTO) -> RunnerSpec:
        """The spec for ``model`` with ``num_ctx`` per slot and the
        request's explicit ``load`` options (the rest: settings and llama.cpp defaults)."""
        s = self.settings
        socket = self._sockets() / f"runner-{next(self._ids)}-{model.digest[:12]}.sock"
        threads = load.num_thread or s.num_threads or len(os.sched_getaffinity(0))
        # --ctx-size is per slot: the runner allocates num_ctx × parallel, as Ollama HEAD does.
        return RunnerSpec(model_name=model.name, model_path=model.model_path,
                          socket_path=socket, ctx_size=num_ctx, parallel=s.num_parallel,
                          threads=threads, debug=s.debug, embedding=embedding,
                          adapters=model.adapter_paths,
                          batch_size=load.num_batch or DEFAULT_BATCH,
                          use_mmap=load.use_mmap is not False, use_mlock=bool(load.use_mlock),
                          flash_attention=s.flash_attention,
                          kv_cache_type=kv_cache_type(s.flash_attention, s.kv_cache_type),
                          profile=s.profile_steps, cpu_sampling=s.cpu_sampling,
                          stream_interval_ms=s.stream_interval_ms,
                          projector=_projector(model, embedding))

    def cleanup(self) -> None:
        """Remove the socket directory if this object made it."""
        if self._own_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _sockets(self) -> Path:
        if self._dir is None:
            if self.settings.runtime_dir is not None:
                self._dir = self.settings.runtime_dir
                self._dir.mkdir(parents=True, exist_ok=True)
            else:
                self._dir = Path(tempfile.mkdtemp(prefix="corral-"))
                self._own_dir = True
        return self._dir


def _projector(model: ModelRef, embedding: bool) -> str:
    """The projector a generation runner loads: llama.cpp takes one, so the first (as Ollama)."""
    paths = model.projector_paths
    if embedding or not paths:
        return ""
    if len(paths) > 1:
        log.warning("extra_projectors_ignored", model=model.name, count=len(paths))
    return paths[0]


def kv_cache_type(flash_attention: str, wanted: str) -> str:
    """The K/V cache type to ask for: llama.cpp needs flash attention for a quantised V cache,
    so with it turned off a quantised type falls back to f16, with Ollama's warning."""
    if wanted != "f16" and flash_attention == "off":
        log.warning("kv_cache_type_needs_flash_attention", kv_cache_type=wanted, using="f16",
                    hint="OLLAMA_FLASH_ATTENTION must be enabled to use a quantized "
                         "OLLAMA_KV_CACHE_TYPE")
        return "f16"
    return wanted


def describe_returncode(returncode: int | None) -> str:
    """``exit status 1`` or ``signal SIGKILL``, as an operator would want to read it."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class RunnerProcess:
    """A spawned ``python -m runner`` and its gRPC client."""

    def __init__(self, process: asyncio.subprocess.Process, spec: RunnerSpec,
                 clock: Clock | None = None) -> None:
        self.process = process
        self.spec = spec
        self.clock = clock or SystemClock()  # the stall timer's
        self.pid = process.pid
        self.client = RunnerClient(f"unix:{spec.socket_path}")
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.last_output = self.clock.monotonic()
        self.load_progress = 0.0
        # Relay in an empty context so lines never inherit the request id of the loading request.
        self._relay = asyncio.get_running_loop().create_task(
            self._relay_stderr(), context=contextvars.Context())

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait(self) -> int:
        """The exit status, once the process has exited and its stderr is drained."""
        returncode = await self.process.wait()
        await asyncio.wait([self._relay], timeout=1.0)
        self._close_transport()
        return returncode

    def _close_transport(self) -> None:
        """Release the exited child's pipes now. asyncio's ``Process`` has no ``close()``, and a
        transport nobody closed warns "unclosed transport" when it is collected."""
        transport = getattr(self.process, "_transport", None)
        if transport is not None and self.process.returncode is not None:
            transport.close()

    def exit_cause(self) -> str:
        """Why the process ended, with the last lines it wrote (Ollama ``llm/status.go``)."""
        cause = f"llama runner process has terminated: {describe_returncode(self.returncode)}"
        tail = " | ".join(list(self.stderr_tail)[-_CAUSE_LINES:])
        return f"{cause}: {tail}" if tail else cause

    async def wait_ready(self, stall_timeout: float) -> None:
        """Wait for health SERVING; fail fast if the process exits, or stalls (no output)."""
        ready = asyncio.ensure_future(self.client.wait_ready(timeout=float("inf")))
        exited = asyncio.ensure_future(self.process.wait())
        try:
            while not ready.done():
                await asyncio.wait({ready, exited}, timeout=_POLL_S,
                                   return_when=asyncio.FIRST_COMPLETED)
                if exited.done() and not ready.done():
                    await asyncio.wait([self._relay], timeout=1.0)
                    raise RunnerCrashedError(self.exit_cause())
                if self.clock.monotonic() - self.last_output > stall_timeout and not ready.done():
                    raise RunnerUnavailableError(self._stall_message())
            ready.result()
        finally:
            for task in (ready, exited):
                task.cancel()

    def _stall_message(self) -> str:
        """Ollama's wording, with the load progress and the last lines the runner wrote."""
        message = f"timed out waiting for llama runner to start - progress {self.load_progress:.2f}"
        tail = " | ".join(list(self.stderr_tail)[-_CAUSE_LINES:])
        return f"{message} - {tail}" if tail else message

    async def stop(self, grace: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), grace)
            except TimeoutError:
                log.warning("runner_killed", runner_pid=self.pid, model=self.spec.model_name)
                self.process.kill()
        returncode = await self.process.wait()
        self._close_transport()
        await self.client.close()
        return returncode

    async def _relay_stderr(self) -> None:
        """Re-emit the runner's JSON log lines as gateway events tagged with its pid and model."""
        bound = log.bind(runner_pid=self.pid, model=self.spec.model_name)
        stderr = self.process.stderr
        assert stderr is not None, "runners are spawned with stderr=PIPE"
        while True:
            try:
                line = await stderr.readline()
            except ValueError:  # a line over the reader's limit (dropped): keep draining
                bound.warning("runner_output_dropped", reason="line too long", process="runner")
                continue
            if not line:
                return
            self.last_output = self.clock.monotonic()
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self._relay_line(bound, text)

    def _relay_line(self, bound: FilteringBoundLogger, text: str) -> None:
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self.stderr_tail.append(text)
            bound.info("runner_output", line=text, process="runner")
            return
        event = str(record.get("event", "runner_log"))
        if event == "model_load_progress":
            self.load_progress = float(record.get("progress") or 0.0)
        level = str(record.get("level", "info")).lower()
        fields = {k: v for k, v in record.items() if k not in _FIELDS_DROPPED}
        fields.setdefault("process", "runner")
        if "model" in fields:  # the runner knows its blob path; the gateway's line names the model
            fields["model_path"] = fields.pop("model")
        if level in ("warning", "error", "critical", "exception"):
            self.stderr_tail.append(f"{event} {fields.get('error', '')}".strip())
        emit = getattr(bound, level if level in ("debug", "warning", "error") else "info")
        emit(event, **fields)


async def spawn_runner(spec: RunnerSpec, clock: Clock | None = None) -> RunnerProcess:
    """Start ``python -m runner`` for ``spec`` (cwd and PYTHONPATH find the package); its stall
    timer reads ``clock``."""
    # Runners take their configuration from flags only, never from OLLAMA_*/CORRAL_* variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CORRAL_"))}
    paths = [str(PACKAGE_PARENT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # No preexec_fn: forking with a live grpc.aio channel and a preexec hook aborts the child
    # now and then (grpc/grpc#43055). The runner arms PR_SET_PDEATHSIG itself from --parent-pid.
    process = await asyncio.create_subprocess_exec(
        *spec.argv(), cwd=PACKAGE_PARENT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        limit=1024 * 1024)
    log.info("runner_spawned", runner_pid=process.pid, model=spec.model_name,
             ctx_size=spec.ctx_size, parallel=spec.parallel, socket=str(spec.socket_path))
    return RunnerProcess(process, spec, clock)
