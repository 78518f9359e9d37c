"""The model-management RPCs in process on port 0, through the real ``RegistryClient``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from google.protobuf.json_format import MessageToDict

from registry.server import running_registry
from services.clients.registry import RegistryClient
from services.errors import (BlobCorruptError, InvalidModelNameError, InvalidRequestError,
                             ModelNotFoundError)
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import RegistrySettings
from tests.registry.model_helpers import chunks_of, sha256_digest, write_projector
from tests.registry.transfer_helpers import write_gguf

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory,
                   database_backend: str) -> AsyncIterator[tuple]:
    models = tmp_path_factory.mktemp("models")
    settings = RegistrySettings(models_dir=models, address="127.0.0.1:0", embedded_model=False)
    async with running_registry(settings) as service:
        client = RegistryClient(f"127.0.0.1:{service.port}")
        await client.wait_ready(timeout=5)
        yield client, models / "blobs"
        await client.close()


async def _upload(client: RegistryClient, data: bytes) -> str:
    digest = sha256_digest(data)
    reply = await client.put_blob(digest, chunks_of(data, 1 << 20))
    assert reply.size == len(data)
    return digest


async def test_blob_upload_stat_and_mismatch(registry) -> None:
    client, blobs = registry
    data = os.urandom(3 * (1 << 20) + 5)
    digest = sha256_digest(data)
    assert not (await client.stat_blob(digest)).exists
    assert (await client.put_blob(digest, chunks_of(data, 1 << 20))).created
    assert not (await client.put_blob(digest, chunks_of(data, 1 << 20))).created
    stat = await client.stat_blob(digest)
    assert stat.exists and stat.size == len(data)
    assert Path(stat.path) == (blobs / ("sha256-" + digest[7:])).resolve()
    before = sorted(blobs.iterdir())
    wrong = sha256_digest(b"other")
    with pytest.raises(BlobCorruptError) as excinfo:
        await client.put_blob(wrong, chunks_of(data, 1 << 20))
    assert excinfo.value.message == f'digest mismatch, expected "{wrong}", got "{digest}"'
    assert sorted(blobs.iterdir()) == before
    for bad in ("sha256:../../corral.db", "../x"):
        with pytest.raises(InvalidRequestError, match="^invalid digest format$"):
            await client.stat_blob(bad)
        with pytest.raises(InvalidRequestError, match="^invalid digest format$"):
            await client.put_blob(bad, chunks_of(b"x"))


async def test_create_show_copy_delete(registry, tiny_gguf: Path) -> None:
    client, blobs = registry
    digest = await _upload(client, tiny_gguf.read_bytes())
    request = pb.CreateModelRequest(name="tiny", files={"tiny.gguf": digest},
                                    template="{{ .Prompt }}", system="S",
                                    messages=[pb.Message(role="user", content="hi")],
                                    license=["MIT"])
    request.parameters.update({"stop": ["a", "b"], "num_ctx": 256})
    statuses = [p.status async for p in client.create(request)]
    assert statuses[0] == "parsing GGUF" and statuses[-2:] == ["writing manifest", "success"]

    shown = await client.show("TINY")
    assert shown.model.name == "tiny:latest"
    assert Path(shown.model_path).read_bytes() == tiny_gguf.read_bytes()
    assert (shown.template, shown.system, list(shown.license)) == ("{{ .Prompt }}", "S", ["MIT"])
    assert MessageToDict(shown.parameters) == {"stop": ["a", "b"], "num_ctx": 256.0}
    assert [(m.role, m.content) for m in shown.messages] == [("user", "hi")]
    assert list(shown.capabilities) == ["completion"]
    assert MessageToDict(shown.model_info)["llama.context_length"] == 256.0
    resolved = await client.resolve("tiny")
    assert (resolved.template, resolved.system) == ("{{ .Prompt }}", "S")

    await client.copy("tiny", "ns/copy:1")
    assert (await client.show("ns/copy:1")).model.digest == shown.model.digest
    assert await client.delete("tiny") == []
    pruned = await client.delete("ns/copy:1")
    assert digest in pruned and not (blobs / ("sha256-" + digest[7:])).exists()


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda c: c.show("nope"), ModelNotFoundError, "model 'nope:latest' not found"),
    (lambda c: c.show("a b"), InvalidModelNameError, "invalid model name"),
    (lambda c: c.copy("nope", "x"), ModelNotFoundError, 'model "nope" not found'),
    (lambda c: c.copy("x y", "x"), InvalidModelNameError, 'source "x y" is invalid'),
    (lambda c: c.delete("nope"), ModelNotFoundError, "model 'nope' not found"),
    (lambda c: c.delete('x"y'), InvalidModelNameError, 'name "x\\"y" is invalid'),
])
async def test_errors_keep_their_class_and_wording(registry, call, error, message) -> None:
    client, _blobs = registry
    with pytest.raises(error) as excinfo:
        await call(client)
    assert excinfo.value.message == message


async def test_create_error_arrives_before_any_progress(registry) -> None:
    client, _blobs = registry
    stream = client.create(pb.CreateModelRequest(name="m"))
    with pytest.raises(InvalidRequestError) as excinfo:
        await anext(stream)
    assert excinfo.value.message == "neither 'from' or 'files' was specified"


async def test_renderer_and_parser_live_in_the_config_and_are_inherited(registry,
                                                                        tiny_gguf: Path) -> None:
    client, blobs = registry
    digest = await _upload(client, tiny_gguf.read_bytes())
    named = pb.CreateModelRequest(name="fmt", files={"m.gguf": digest}, renderer="qwen3-coder",
                                  parser="qwen3-coder")
    assert [p.status async for p in client.create(named)][-1] == "success"
    shown, resolved = await client.show("fmt"), await client.resolve("fmt")
    assert (shown.renderer, shown.parser) == ("qwen3-coder", "qwen3-coder")
    assert (resolved.renderer, resolved.parser) == ("qwen3-coder", "qwen3-coder")
    configs = [path.read_bytes() for path in blobs.iterdir()
               if path.stat().st_size < 4096 and b'"model_format"' in path.read_bytes()]
    assert any(b'"renderer":"qwen3-coder","parser":"qwen3-coder","architecture":"amd64"' in c
               for c in configs)  # Go's field order in Ollama's ConfigV2
    # a model made from it keeps them; a request's own name replaces one; "" removes one
    child = pb.CreateModelRequest(name="child", parser="harmony", renderer="")
    child.__setattr__("from", "fmt")
    assert [p.status async for p in client.create(child)][-1] == "success"
    child_shown = await client.show("child")
    assert (child_shown.renderer, child_shown.parser) == ("", "harmony")
    grandchild = pb.CreateModelRequest(name="grandchild", system="S")
    grandchild.__setattr__("from", "child")
    assert [p.status async for p in client.create(grandchild)][-1] == "success"
    assert (await client.resolve("grandchild")).parser == "harmony"


async def test_show_names_the_adapter_and_projector_files(registry, tmp_path: Path,
                                                          tiny_gguf: Path) -> None:
    """The gateway's Modelfile lists these paths; it never builds blob paths itself."""
    client, blobs = registry
    model = await _upload(client, tiny_gguf.read_bytes())
    adapter = await _upload(client, write_gguf(tmp_path / "a.gguf", np.zeros((4, 8), np.float32),
                                               context_length=64).read_bytes())
    projector = await _upload(client, write_projector(tmp_path / "p.gguf").read_bytes())
    request = pb.CreateModelRequest(name="parts", files={"m.gguf": model, "p.gguf": projector},
                                    adapters={"a.gguf": adapter})
    assert [p.status async for p in client.create(request)][-1] == "success"
    shown, resolved = await client.show("parts"), await client.resolve("parts")
    assert list(shown.adapter_paths) == [str((blobs / f"sha256-{adapter[7:]}").resolve())]
    assert list(shown.projector_paths) == [str((blobs / f"sha256-{projector[7:]}").resolve())]
    assert shown.adapter_paths == resolved.adapter_paths
    assert shown.projector_paths == resolved.projector_paths
    assert list(shown.adapters) == [adapter] and list(shown.projectors) == [projector]
