"""The registry's gRPC service, in process on port 0, through the real client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from registry.server import running_registry
from services.clients.registry import RegistryClient
from services.errors import InvalidModelNameError, ModelNotFoundError
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.pb.corral.registry.v1 import registry_pb2_grpc
from services.settings import RegistrySettings

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory, smollm2_file: Path,
                 database_backend: str) -> AsyncIterator[RegistryClient]:
    settings = RegistrySettings(models_dir=tmp_path_factory.mktemp("models"),
                                address="127.0.0.1:0")
    async with running_registry(settings) as service:
        client = RegistryClient(f"127.0.0.1:{service.port}")
        await client.wait_ready(timeout=5)
        yield client
        await client.close()


async def test_resolve_embedded_model(client: RegistryClient, smollm2_file: Path) -> None:
    reply = await client.resolve("smollm2:135m")
    assert reply.model.name == "smollm2:135m"
    assert len(reply.model.digest) == 64 and ":" not in reply.model.digest
    assert reply.model.details.format == "gguf" and reply.model.details.family == "llama"
    assert list(reply.model.details.families) == ["llama"]
    assert reply.model.details.quantization_level == "Q4_1"
    assert reply.model.details.context_length == 8192
    assert reply.model.details.embedding_length == 576
    path = Path(reply.model_path)
    assert path.is_absolute() and re.fullmatch(r"sha256-[0-9a-f]{64}", path.name)
    assert path.stat().st_size == smollm2_file.stat().st_size
    assert "im_start" in reply.chat_template
    assert (reply.bos_token, reply.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert reply.template == reply.system == "" and not reply.messages
    assert dict(reply.parameters) == {}


async def test_resolve_is_case_insensitive(client: RegistryClient) -> None:
    lower = await client.resolve("smollm2:135m")
    upper = await client.resolve("SMOLLM2:135M")
    qualified = await client.resolve("registry.ollama.ai/library/SmolLM2:135m")
    assert lower == upper == qualified
    assert upper.model.name == "smollm2:135m"


async def test_resolve_unknown_is_not_found(client: RegistryClient) -> None:
    with pytest.raises(ModelNotFoundError) as excinfo:
        await client.resolve("nope")
    assert excinfo.value.message == "model 'nope' not found"


async def test_resolve_bad_name_is_invalid_argument(client: RegistryClient) -> None:
    with pytest.raises(InvalidModelNameError) as excinfo:
        await client.resolve("bad name!")
    assert excinfo.value.message == "invalid model name"


async def test_list_models(client: RegistryClient) -> None:
    (model,) = await client.list_models()
    resolved = await client.resolve("smollm2:135m")
    shown = await client.show("smollm2:135m")
    assert list(model.capabilities) == list(shown.capabilities) == ["completion"]
    del model.capabilities[:]  # the rest is what resolve reports
    assert model == resolved.model
    assert model.size > 98_000_000
    modified = model.modified_at.ToDatetime(tzinfo=UTC)
    assert abs((datetime.now(UTC) - modified).total_seconds()) < 600


async def test_raw_status_codes(client: RegistryClient) -> None:
    async with grpc.aio.insecure_channel(client.target) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        for name, code in (("nope", grpc.StatusCode.NOT_FOUND),
                           ("bad name!", grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                await stub.ResolveModel(pb.ResolveModelRequest(name=name))
            assert excinfo.value.code() == code
