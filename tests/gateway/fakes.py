"""Fakes at the gateway's process seams: the registry client and runner processes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from gateway.memory import Footprint, kv_cache_bytes
from gateway.model_ref import ModelRef
from gateway.leases import Lease
from gateway.runners import RunnerSpec, describe_returncode
from gateway.scheduler import Scheduler
from services.errors import InvalidModelNameError, ModelNotFoundError, RunnerUnavailableError
from services.pb.corral.registry.v1 import registry_pb2 as rpb
from services.pb.corral.runner.v1 import runner_pb2 as pb

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


def resolved_model(name: str = "smollm2:135m", digest: str = "ab" * 32, *,
                   chat_template: str = SMOLLM2_TEMPLATE, system: str = "",
                   parameters: dict[str, Any] | None = None, seconds: int = 1_700_000_000,
                   context_length: int = 8192) -> rpb.ResolveModelResponse:
    reply = rpb.ResolveModelResponse(
        model=rpb.ModelSummary(
            name=name, digest=digest, size=100_000_000,
            modified_at=timestamp_pb2.Timestamp(seconds=seconds),
            details=rpb.ModelDetails(format="gguf", family="llama", families=["llama"],
                                     parameter_size="135M", quantization_level="Q4_1",
                                     context_length=context_length)),
        model_path=f"/models/blobs/sha256-{digest}", chat_template=chat_template, system=system,
        bos_token="<|im_start|>", eos_token="<|im_end|>")
    if parameters:
        reply.parameters.update(parameters)
    return reply


def model_ref(name: str = "smollm2:135m", digest: str = "ab" * 32, **fields: Any) -> ModelRef:
    """What the scheduler is handed for ``resolved_model(name, digest, **fields)``, with 1000
    f16 KV bytes per cell as the registry would report them."""
    resolved = resolved_model(name, digest, **fields)
    resolved.kv_cache_shape.f16_bytes_per_token = resolved.kv_cache_shape.f16_bytes_per_token or 1000
    return ModelRef.of(resolved)


_MB = 1024 * 1024


class FakeRegistry:
    """RegistryClient's surface over an in-memory dict."""

    def __init__(self, *models: rpb.ResolveModelResponse) -> None:
        self.models = {m.model.name: m for m in models}
        self.closed = False
        self.down = False  # status() fails as an unreachable registry does
        self.schema_revision = "0001"

    async def resolve(self, name: str) -> rpb.ResolveModelResponse:
        if " " in name or "!" in name:
            raise InvalidModelNameError()
        full = name if ":" in name else f"{name}:latest"
        if full not in self.models:
            raise ModelNotFoundError(f"model '{name}' not found")
        return self.models[full]

    async def list_models(self) -> list[rpb.ModelSummary]:
        return [m.model for m in self.models.values()]

    async def check_key(self, key_hash: str = "") -> rpb.CheckKeyResponse:
        """No API keys: auth stays off (tests/gateway/test_security.py uses a real registry)."""
        return rpb.CheckKeyResponse(
            keys_exist=False, status=rpb.KEY_STATUS_UNKNOWN if key_hash else rpb.KEY_STATUS_UNSPECIFIED)
    async def status(self, timeout: float | None = None) -> rpb.GetStatusResponse:
        if self.down:
            raise RunnerUnavailableError("failed to connect to all addresses")
        return rpb.GetStatusResponse(schema_revision=self.schema_revision, schema_head="0001",
                                     models=len(self.models), blobs=2, blob_bytes=1234)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Script:
    """What fake runners do: the text pieces they generate and how."""

    pieces: tuple[str, ...] = ("Hello", ",", " world", "!")
    delay: float = 0.0
    done_reason: pb.DoneReason.ValueType = pb.DONE_REASON_STOP
    fail_after: int | None = None  # raise RunnerUnavailableError after this many chunks
    load_delay: float = 0.0
    load_exit: int | None = None  # the process exits with this code while loading
    kv_cache_type: str | None = None  # what info() reports (default: what the spec asked for)
    loading: asyncio.Event | None = None  # when given, a load finishes only once it is set
    streaming: asyncio.Event | None = None  # when given, pieces after the first wait for it


class FakeRunnerClient:
    def __init__(self, process: FakeRunnerProcess) -> None:
        self.process = process
        self.requests: list[pb.GenerateRequest] = []
        self.closed = False

    async def generate(self, request: pb.GenerateRequest) -> AsyncGenerator[pb.GenerationEvent, None]:
        self.requests.append(request)
        script = self.process.script
        for index, piece in enumerate(script.pieces):
            if script.fail_after is not None and index >= script.fail_after:
                raise RunnerUnavailableError("Socket closed")
            if script.streaming is not None and index > 0:
                await self.process.until_exit_or(script.streaming)
            await asyncio.sleep(script.delay)
            if self.process.returncode is not None:
                raise RunnerUnavailableError("Socket closed")
            yield pb.GenerationEvent(chunk=pb.Chunk(text=piece, token_count=1))
        yield pb.GenerationEvent(done=pb.Done(
            done_reason=script.done_reason, prompt_eval_count=7, prompt_eval_duration_ns=1000,
            eval_count=len(script.pieces), eval_duration_ns=2000, context=[1, 2, 3]))

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        """A unit vector per input (tests/gateway/test_embed.py installs a richer one)."""
        return pb.EmbedResponse(embeddings=[pb.Embedding(values=[1.0, 0.0]) for _ in request.inputs],
                                prompt_eval_count=len(request.inputs))

    async def tokenize(self, text: str, *, add_special: bool = False,
                       parse_special: bool = True) -> list[int]:
        """One token per whitespace-separated word (plus 1 as BOS with ``add_special``)."""
        return [1] * add_special + [len(word) for word in text.split()]

    async def info(self) -> pb.InfoResponse:
        spec = self.process.spec
        return pb.InfoResponse(n_ctx=spec.ctx_size * spec.parallel, n_ctx_per_slot=spec.ctx_size,
                               n_parallel=spec.parallel, pid=self.process.pid,
                               n_threads=spec.threads, n_batch=spec.batch_size,
                               kv_cache_type=self.process.script.kv_cache_type
                               or spec.kv_cache_type)

    async def close(self) -> None:
        self.closed = True


class FakeRunnerProcess:
    """RunnerProcess's surface; ``crash()`` simulates an unexpected exit."""

    _pids = itertools.count(4000)

    def __init__(self, spec: RunnerSpec, script: Script) -> None:
        self.spec = spec
        self.script = script
        self.pid = next(self._pids)
        self.client = FakeRunnerClient(self)
        self.returncode: int | None = None
        self.stderr_tail = ["model_loaded"]
        self._exited = asyncio.Event()
        self.stop_calls = 0
        self.loading = False  # wait_ready was called

    def crash(self, returncode: int = -9) -> None:
        self.stderr_tail.append("fatal: out of cheese")
        self.returncode = returncode
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def until_exit_or(self, event: asyncio.Event) -> None:
        """Wait for ``event``, or for the process to exit, whichever comes first."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._exited.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def wait_ready(self, stall_timeout: float) -> None:
        self.loading = True
        await asyncio.sleep(self.script.load_delay)
        if self.script.loading is not None:
            await self.until_exit_or(self.script.loading)
        if self.script.load_exit is not None:
            from services.errors import RunnerCrashedError
            self.crash(self.script.load_exit)
            raise RunnerCrashedError(self.exit_cause())

    def exit_cause(self) -> str:
        return (f"llama runner process has terminated: {describe_returncode(self.returncode)}: "
                + " | ".join(self.stderr_tail))

    async def stop(self, grace: float = 5.0) -> int:
        self.stop_calls += 1
        if self.returncode is None:
            self.returncode = -15
            self._exited.set()
        await self.client.close()
        return self.returncode


@dataclass
class FakeSpawner:
    """The Scheduler's spawn factory: records every runner it starts."""

    script: Script = field(default_factory=Script)
    spawned: list[FakeRunnerProcess] = field(default_factory=list)
    _grew: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, spec: RunnerSpec) -> FakeRunnerProcess:
        process = FakeRunnerProcess(spec, self.script)
        self.spawned.append(process)
        self._grew.set()
        return process

    async def until_spawned(self, count: int = 1) -> FakeRunnerProcess:
        """Wait until ``count`` runners were started; the last of them."""
        while len(self.spawned) < count:
            self._grew.clear()
            await self._grew.wait()
        return self.spawned[count - 1]

    @property
    def alive(self) -> list[FakeRunnerProcess]:
        return [p for p in self.spawned if p.returncode is None]


class FakeMemory:
    """``available`` bytes (MemAvailable); each model's weights by its blob path."""

    def __init__(self, available: int, weights: dict[str, int]) -> None:
        self.free = available
        self.weights = weights

    def available(self) -> int:
        return self.free

    async def footprint(self, model_path: str, n_ctx: int, extra_files: tuple[str, ...] = (),
                        kv_cache_type: str = "f16", *, kv_bytes_per_token: int) -> Footprint:
        return Footprint(weights=self.weights[model_path], overhead=0,
                         kv_cache=kv_cache_bytes(n_ctx * kv_bytes_per_token, kv_cache_type))


class KvMemory:
    """Plenty of memory; the model's f16 KV bytes per cell, stored as the type asks."""

    def available(self) -> int:
        return 1 << 40

    async def footprint(self, model_path: str, n_ctx: int, extra_files: tuple[str, ...] = (),
                        kv_cache_type: str = "f16", *, kv_bytes_per_token: int) -> Footprint:
        return Footprint(weights=100 * _MB, overhead=0,
                         kv_cache=kv_cache_bytes(n_ctx * kv_bytes_per_token, kv_cache_type))


class Holder:
    """A request that holds a runner slot until ``release()``: ``acquired`` is set once it has
    one, ``lease`` is its lease."""

    def __init__(self, scheduler: Scheduler, model: ModelRef, keep_alive: float | None = None,
                 num_ctx: int = 2048) -> None:
        self.acquired = asyncio.Event()
        self.lease: Lease | None = None
        self._release = asyncio.Event()
        self.task = asyncio.create_task(self._run(scheduler, model, keep_alive, num_ctx))

    async def _run(self, scheduler: Scheduler, model: ModelRef, keep_alive: float | None,
                   num_ctx: int) -> None:
        async with scheduler.acquire(model, num_ctx, keep_alive) as self.lease:
            self.acquired.set()
            await self._release.wait()

    async def holding(self) -> Lease:
        """Wait (at most a second: a guard, not an ordering) until the slot is held."""
        await asyncio.wait_for(self.acquired.wait(), 1)
        assert self.lease is not None
        return self.lease

    async def done(self) -> None:
        """Release the slot and wait for the request to end."""
        self._release.set()
        await self.task

    def release(self) -> None:
        self._release.set()


def install_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every FakeRunnerClient a character tokenizer (one token per character, BOS = 1)."""
    async def tokenize(self: FakeRunnerClient, text: str, *, add_special: bool = False,
                       parse_special: bool = True) -> list[int]:
        return [1] * add_special + [ord(c) for c in text]

    async def detokenize(self: FakeRunnerClient, tokens: list[int]) -> str:
        return "".join(chr(t) for t in tokens)

    monkeypatch.setattr(FakeRunnerClient, "tokenize", tokenize, raising=False)
    monkeypatch.setattr(FakeRunnerClient, "detokenize", detokenize, raising=False)
