"""One shared ``corral serve`` for the end-to-end tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.server import CorralServer


@pytest.fixture(scope="session")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("corral")
    server = CorralServer(base / "models", base / "serve.log").start()
    yield server
    server.stop()
