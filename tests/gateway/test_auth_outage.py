"""The key check while the registry is unreachable: open if it had no keys, closed if it had."""

from __future__ import annotations

import pytest

from gateway.auth import Authenticator
from services.errors import RunnerUnavailableError
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import AUTH_AUTO, AUTH_REQUIRED


class FlakyRegistry:
    def __init__(self, keys_exist: bool) -> None:
        self.keys_exist = keys_exist
        self.down = False

    async def check_key(self, key_hash: str = "") -> pb.CheckKeyResponse:
        if self.down:
            raise RunnerUnavailableError("the model registry is unavailable")
        return pb.CheckKeyResponse(keys_exist=self.keys_exist)


async def test_a_server_without_keys_stays_open_while_the_registry_is_down() -> None:
    registry = FlakyRegistry(keys_exist=False)
    auth = Authenticator(registry, AUTH_AUTO)
    assert not (await auth.caller(None)).auth_on
    registry.down = True
    assert not (await auth.caller(None)).auth_on
    assert not await auth.keys_exist()


@pytest.mark.parametrize(("keys_exist", "mode"), [(True, AUTH_AUTO), (False, AUTH_REQUIRED)])
async def test_a_locked_server_fails_closed_while_the_registry_is_down(keys_exist, mode) -> None:
    registry = FlakyRegistry(keys_exist=keys_exist)
    auth = Authenticator(registry, mode)
    await auth.keys_exist()
    registry.down = True
    with pytest.raises(RunnerUnavailableError):
        await auth.caller("corral_secret")


async def test_nothing_is_assumed_before_the_registry_ever_answered() -> None:
    registry = FlakyRegistry(keys_exist=False)
    registry.down = True
    with pytest.raises(RunnerUnavailableError):
        await Authenticator(registry, AUTH_AUTO).caller(None)
