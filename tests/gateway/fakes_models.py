"""A fake registry with the model-management RPCs (show/create/copy/delete/blobs)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from google.protobuf import timestamp_pb2

from services.errors import (BlobCorruptError, CorralError, InvalidModelNameError,
                             ModelNotFoundError)
from services.pb.corral.registry.v1 import registry_pb2 as rpb
from tests.gateway.fakes import SMOLLM2_TEMPLATE, FakeRegistry, resolved_model

BLOBS = "/models/blobs"


def shown_model(name: str = "mario:latest", *, template: str = "", chat_template: str = "",
                system: str = "", parameters: dict | None = None, licenses: tuple = (),
                messages: tuple = (), adapters: tuple = (), model_info: dict | None = None,
                capabilities: tuple = ("completion",)) -> rpb.ShowModelResponse:
    """A ``ShowModelResponse`` as the registry would send it."""
    reply = rpb.ShowModelResponse(
        model=rpb.ModelSummary(
            name=name, digest="ef" * 32, size=1234,
            modified_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=500_000_000),
            details=rpb.ModelDetails(parent_model="smollm2:135m", format="gguf", family="llama",
                                     families=["llama"], parameter_size="134.52M",
                                     quantization_level="Q4_1", context_length=8192,
                                     embedding_length=576)),
        model_path=f"{BLOBS}/sha256-{'ab' * 32}", template=template,
        chat_template=chat_template, system=system, license=list(licenses),
        messages=[rpb.Message(role=r, content=c) for r, c in messages],
        capabilities=list(capabilities), adapters=list(adapters),
        adapter_paths=[f"{BLOBS}/{digest.replace(':', '-')}" for digest in adapters])
    reply.parameters.update(parameters or {})
    reply.model_info.update(model_info or {"general.architecture": "llama",
                                           "llama.context_length": 8192})
    return reply


class FakeModelRegistry(FakeRegistry):
    """``FakeRegistry`` plus model management over in-memory dicts, recording every call."""

    def __init__(self, *models: rpb.ResolveModelResponse) -> None:
        super().__init__(*(models or (resolved_model(chat_template=SMOLLM2_TEMPLATE),)))
        self.shown: dict[str, rpb.ShowModelResponse] = {}
        self.blobs: dict[str, bytes] = {}
        self.creates: list[rpb.CreateModelRequest] = []
        self.progress: list[rpb.Progress] = [rpb.Progress(status="success")]
        self.fail_create: tuple[int, CorralError] | None = None  # (after n objects, error)
        self.copies: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.chunk_sizes: list[int] = []
        self.put_calls = 0

    async def show(self, name: str) -> rpb.ShowModelResponse:
        if " " in name:
            raise InvalidModelNameError()
        full = (name if ":" in name else f"{name}:latest").lower()
        if full not in self.shown:
            raise ModelNotFoundError(f"model '{full}' not found")
        return self.shown[full]

    async def create(self, request: rpb.CreateModelRequest) -> AsyncIterator[rpb.Progress]:
        self.creates.append(request)
        for index, progress in enumerate(self.progress):
            if self.fail_create and self.fail_create[0] == index:
                raise self.fail_create[1]
            yield progress

    async def copy(self, source: str, destination: str) -> None:
        if source not in self.shown:
            raise ModelNotFoundError(f'model "{source}" not found')
        self.copies.append((source, destination))

    async def delete(self, name: str) -> list[str]:
        if " " in name:
            raise InvalidModelNameError(f'name "{name}" is invalid')
        if name not in self.shown:
            raise ModelNotFoundError(f"model '{name}' not found")
        self.deleted.append(name)
        return []

    async def stat_blob(self, digest: str) -> rpb.StatBlobResponse:
        data = self.blobs.get(digest)
        return rpb.StatBlobResponse(exists=data is not None, size=len(data or b""),
                                    path=f"{BLOBS}/{digest.replace(':', '-')}")

    async def put_blob(self, digest: str, chunks: AsyncIterable[bytes]) -> rpb.PutBlobResponse:
        self.put_calls += 1
        hasher, parts = hashlib.sha256(), []
        async for chunk in chunks:
            self.chunk_sizes.append(len(chunk))
            hasher.update(chunk)
            parts.append(chunk)
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise BlobCorruptError(f'digest mismatch, expected "{digest}", got "{actual}"')
        self.blobs[digest] = b"".join(parts)
        return rpb.PutBlobResponse(created=True, size=len(self.blobs[digest]))
