"""A real registry (in process, gRPC on port 0) behind the real gateway app, for /v2/ and
/api/pull|push tests; no runners are ever started."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.app import create_app
from gateway.scheduler import Scheduler
from registry.server import running_registry
from services.clients.registry import RegistryClient
from services.names import parse_name
from services.settings import GatewaySettings, RegistrySettings
from tests.registry.conftest import open_store


@asynccontextmanager
async def real_registry(models_dir: Path, seed: dict[str, Path] | None = None
                        ) -> AsyncIterator[RegistryClient]:
    """A registry over ``models_dir``, first seeded with ``{name: gguf file}``."""
    if seed:
        async with open_store(models_dir) as store:
            for name, gguf in seed.items():
                await store.import_gguf(parse_name(name), gguf)
    settings = RegistrySettings(models_dir=models_dir, address="127.0.0.1:0", embedded_model=False)
    async with running_registry(settings) as service:
        client = RegistryClient(f"127.0.0.1:{service.port}")
        await client.wait_ready(timeout=10)
        yield client
        await client.close()


async def gateway_client(aiohttp_client, registry: RegistryClient, tmp_path: Path, *,
                         registry_write: bool = False):
    """The real gateway app over ``registry``, served on a loopback port."""
    settings = dataclasses.replace(GatewaySettings.from_env({}), runtime_dir=tmp_path / "run",
                                   registry_write=registry_write)
    app = create_app(settings, registry=registry, scheduler=Scheduler(settings))
    return await aiohttp_client(app, server_kwargs={"host": "127.0.0.1"})
