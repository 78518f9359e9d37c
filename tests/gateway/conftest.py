"""Gateway fixtures: the real app and Scheduler over a fake registry and fake runners."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.app import create_app
from gateway.ports import Clock
from gateway.scheduler import Scheduler
from services.settings import GatewaySettings
from tests.gateway.fakes import FakeRegistry, FakeSpawner, resolved_model


@pytest.fixture
def settings(tmp_path) -> GatewaySettings:
    return dataclasses.replace(GatewaySettings.from_env({}), runtime_dir=tmp_path / "run")


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(resolved_model(), resolved_model("gemma3:270m", "cd" * 32, chat_template=""))


@pytest.fixture
def spawner() -> FakeSpawner:
    return FakeSpawner()


@pytest.fixture
def make_client(aiohttp_client, registry, spawner):
    """Build a test client; keyword arguments override settings fields (``clock``: the
    scheduler's, e.g. a ``tests.gateway.clock.ManualClock``)."""
    async def make(settings: GatewaySettings, clock: Clock | None = None, **overrides):
        settings = dataclasses.replace(settings, **overrides)
        scheduler = Scheduler(settings, spawn=spawner, clock=clock)
        return await aiohttp_client(create_app(settings, registry=registry, scheduler=scheduler))
    return make


@pytest.fixture
async def client(make_client, settings):
    return await make_client(settings)
