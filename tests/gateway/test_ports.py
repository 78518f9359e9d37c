"""The fakes the gateway tests run on implement the same Protocols as the real parts.

mypy checks the annotated assignments (a fake that drifts from a Protocol fails the type check);
the ``isinstance`` checks (``runtime_checkable``) catch a missing member when the suite runs."""

from __future__ import annotations

from gateway.clock import SystemClock
from gateway.memory import SystemMemory
from gateway.ports import (BlobSource, Clock, MemoryProbe, ModelResolver, RegistryPort, RunnerPort,
                           RunnerProcessPort, SpawnFn)
from gateway.runners import RunnerProcess, spawn_runner
from services.clients.registry import RegistryClient
from services.clients.runner import RunnerClient
from services.settings import GatewaySettings
from tests.gateway.clock import ManualClock
from gateway.runners import SpecMaker
from tests.gateway.fakes import (FakeMemory, FakeRegistry, FakeRunnerProcess, FakeSpawner,
                                 KvMemory, Script, model_ref)


def test_fakes_implement_the_ports(settings: GatewaySettings) -> None:
    registry: RegistryPort = FakeRegistry()
    resolver: ModelResolver = registry
    spawn: SpawnFn = FakeSpawner()
    spec = SpecMaker(settings).make(model_ref(), 512)
    process: RunnerProcessPort = FakeRunnerProcess(spec, Script())
    client: RunnerPort = process.client
    memories: list[MemoryProbe] = [KvMemory(), FakeMemory(0, {})]
    clock: Clock = ManualClock()
    assert isinstance(registry, RegistryPort) and isinstance(resolver, ModelResolver)
    assert isinstance(process, RunnerProcessPort) and isinstance(client, RunnerPort)
    assert all(isinstance(memory, MemoryProbe) for memory in memories)
    assert isinstance(clock, Clock) and callable(spawn)


async def test_real_parts_implement_the_ports() -> None:
    registry: RegistryPort = RegistryClient("127.0.0.1:1")
    runner: RunnerPort = RunnerClient("unix:/nonexistent.sock")
    memory: MemoryProbe = SystemMemory()
    clock: Clock = SystemClock()
    spawn: SpawnFn = spawn_runner
    blobs = RegistryClient("127.0.0.1:1")
    source: BlobSource = blobs
    assert isinstance(registry, RegistryPort) and isinstance(runner, RunnerPort)
    assert isinstance(source, BlobSource) and not isinstance(memory, BlobSource)
    assert isinstance(memory, MemoryProbe) and isinstance(clock, Clock) and callable(spawn)
    await registry.close()
    await blobs.close()
    await runner.close()
    members = {name for name in dir(RunnerProcessPort) if not name.startswith("_")}
    assert members <= set(dir(RunnerProcess)) | {"pid", "client", "stderr_tail"}

