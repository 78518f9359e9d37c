"""One shared ``corral serve`` for the end-to-end tests, and the OpenAPI check of every response
they receive (``tests/e2e/openapi_check.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import openapi_check, peers
from tests.e2e.server import CorralServer

openapi_check.install()


@pytest.fixture(autouse=True)
def responses_match_the_openapi_spec() -> Iterator[None]:
    """Fail the test if any response it received violated the spec, even one a client library
    caught and turned into something else."""
    seen = len(openapi_check.violations)
    yield
    new = openapi_check.violations[seen:]
    assert not new, "responses that violate gateway/openapi:\n" + "\n".join(new)


@pytest.fixture(scope="session")
def corral(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("corral")
    server = CorralServer(base / "models", base / "serve.log").start()
    yield server
    server.stop()


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on a free port (skips when it is not installed)."""
    with peers.docker_registry(tmp_path / "docker-registry") as address:
        yield address
