"""The gateway's seams to other processes and to the machine, as ``typing.Protocol``s.

Why Protocols and not base classes: the real implementations live in ``services/`` (the gRPC
clients, which may not import the gateway) or wrap an OS process, and the test fakes in
``tests/gateway/fakes.py`` must stand in for them without inheriting from them. A Protocol states
the surface the scheduler and the generation code rely on, in one place; mypy checks that the real
classes and the fakes both provide it, and ``runtime_checkable`` lets a test assert it too. Each
Protocol lists only what the gateway calls, so a fake never has to grow unused methods.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from gateway.clock import Cancellable as Cancellable  # defined beside SystemClock; a port too
from gateway.clock import Clock as Clock
from services.pb.corral.registry.v1 import registry_pb2 as rpb
from services.pb.corral.runner.v1 import runner_pb2 as pb

if TYPE_CHECKING:
    from gateway.memory import Footprint
    from gateway.runners import RunnerSpec


@runtime_checkable
class ModelResolver(Protocol):
    """The registry client as inference uses it: a model name to its ResolveModelResponse."""

    async def resolve(self, name: str) -> rpb.ResolveModelResponse: ...


@runtime_checkable
class BlobSource(Protocol):
    """The registry client as the gateway's blob cache uses it: a blob's size and its bytes."""

    @property
    def target(self) -> str:
        """The registry's address, for log lines."""

    async def stat_blob(self, digest: str) -> rpb.StatBlobResponse: ...

    def read_blob(self, digest: str, *, offset: int = 0,
                  length: int = 0) -> AsyncGenerator[rpb.ReadBlobResponse, None]: ...


@runtime_checkable
class RegistryPort(ModelResolver, Protocol):
    """The registry client's core surface every gateway app relies on (``RegistryClient``)."""

    async def list_models(self) -> list[rpb.ModelSummary]: ...

    async def check_key(self, key_hash: str = "") -> rpb.CheckKeyResponse: ...

    async def status(self, timeout: float | None = None) -> rpb.GetStatusResponse: ...

    async def close(self) -> None: ...


@runtime_checkable
class RunnerPort(Protocol):
    """One runner's gRPC client (``services.clients.runner.RunnerClient``)."""

    def generate(self, request: pb.GenerateRequest) -> AsyncGenerator[pb.GenerationEvent, None]: ...

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse: ...

    async def tokenize(self, text: str, *, add_special: bool = False,
                       parse_special: bool = True) -> list[int]: ...

    async def info(self) -> pb.InfoResponse: ...

    async def close(self) -> None: ...


@runtime_checkable
class RunnerProcessPort(Protocol):
    """One runner process as the supervisor drives it (``gateway.runners.RunnerProcess``)."""

    @property
    def pid(self) -> int: ...

    @property
    def client(self) -> RunnerPort: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stderr_tail(self) -> Sequence[str]: ...

    async def wait(self) -> int: ...

    async def wait_ready(self, stall_timeout: float) -> None: ...

    async def stop(self, grace: float = ...) -> int: ...

    def exit_cause(self) -> str: ...


SpawnFn = Callable[["RunnerSpec"], Awaitable[RunnerProcessPort]]


@runtime_checkable
class MemoryProbe(Protocol):
    """What the machine has to give and what a runner will take (``gateway.memory``)."""

    def available(self) -> int | None: ...

    async def footprint(self, model_path: str, n_ctx: int, extra_files: tuple[str, ...] = (),
                        kv_cache_type: str = "f16", *, kv_bytes_per_token: int) -> Footprint: ...

