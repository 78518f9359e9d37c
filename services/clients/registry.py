"""Client of the registry process."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from services.clients.base import (
    metadata,
    service_channel,
    translated_stream,
    translating,
)
from services.grpc_server import wait_for_serving
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.pb.corral.registry.v1 import registry_pb2_grpc
from services.settings import GrpcTls


class RegistryClient:
    """Typed access to the registry's RPCs; errors arrive as ``CorralError``."""

    def __init__(self, target: str, tls: GrpcTls | None = None) -> None:
        self.target = target
        self._channel = service_channel(target, tls)
        self._stub = registry_pb2_grpc.RegistryStub(self._channel)

    async def wait_ready(self, timeout: float) -> None:
        await wait_for_serving(self._channel, timeout=timeout)

    @translating
    async def resolve(self, name: str) -> pb.ResolveModelResponse:
        """The model called ``name``; raises ``ModelNotFoundError`` / ``InvalidModelNameError``."""
        return await self._stub.ResolveModel(pb.ResolveModelRequest(name=name), metadata=metadata())

    @translating
    async def list_models(self) -> list[pb.ModelSummary]:
        reply = await self._stub.ListModels(pb.ListModelsRequest(), metadata=metadata())
        return list(reply.models)

    def pull(self, name: str, *, insecure: bool = False) -> AsyncIterator[pb.Progress]:
        """Pull ``name`` from its registry: Ollama's progress lines; closing cancels the pull."""
        request = pb.PullModelRequest(name=name, insecure=insecure)
        return translated_stream(self._stub.PullModel(request, metadata=metadata()))

    def push(self, name: str, *, insecure: bool = False) -> AsyncIterator[pb.Progress]:
        """Push the local model ``name`` to the registry its name points at."""
        request = pb.PushModelRequest(name=name, insecure=insecure)
        return translated_stream(self._stub.PushModel(request, metadata=metadata()))

    @translating
    async def get_manifest(self, repository: str, reference: str,
                           host: str = "") -> pb.GetManifestResponse:
        """A stored manifest's exact bytes (``ModelNotFoundError`` when unknown)."""
        request = pb.GetManifestRequest(repository=repository, reference=reference, host=host)
        return await self._stub.GetManifest(request, metadata=metadata())

    @translating
    async def put_manifest(self, repository: str, reference: str, content: bytes,
                           host: str = "") -> str:
        """Store a manifest whose blobs are all stored; returns its ``sha256:`` digest."""
        request = pb.PutManifestRequest(repository=repository, reference=reference,
                                        content=content, host=host)
        return (await self._stub.PutManifest(request, metadata=metadata())).digest

    # -- model management (create/show/copy/delete/blobs) --------------------------------------

    @translating
    async def show(self, name: str) -> pb.ShowModelResponse:
        """What ``/api/show`` reports; ``ModelNotFoundError`` (``model 'NAME:TAG' not found``)."""
        return await self._stub.ShowModel(pb.ShowModelRequest(name=name), metadata=metadata())

    def create(self, request: pb.CreateModelRequest) -> AsyncIterator[pb.Progress]:
        """Build a model from Ollama's JSON create form: its progress lines, ``success`` last."""
        return translated_stream(self._stub.CreateModel(request, metadata=metadata()))

    @translating
    async def copy(self, source: str, destination: str) -> None:
        """Give ``source``'s manifest the name ``destination`` too."""
        request = pb.CopyModelRequest(source=source, destination=destination)
        await self._stub.CopyModel(request, metadata=metadata())

    @translating
    async def delete(self, name: str) -> list[str]:
        """Remove ``name``; returns the blob digests pruned with it."""
        reply = await self._stub.DeleteModel(pb.DeleteModelRequest(name=name), metadata=metadata())
        return list(reply.pruned)

    @translating
    async def stat_blob(self, digest: str) -> pb.StatBlobResponse:
        """Whether blob ``digest`` is stored (``InvalidRequestError`` for a malformed digest)."""
        return await self._stub.StatBlob(pb.StatBlobRequest(digest=digest), metadata=metadata())

    @translating
    async def put_blob(self, digest: str, chunks: AsyncIterable[bytes]) -> pb.PutBlobResponse:
        """Stream ``chunks`` (each under gRPC's 4 MiB message limit) as blob ``digest``.

        Raises ``BlobCorruptError`` when the bytes do not hash to ``digest``."""
        async def messages() -> AsyncIterator[pb.PutBlobRequest]:
            yield pb.PutBlobRequest(digest=digest)
            async for chunk in chunks:
                if chunk:
                    yield pb.PutBlobRequest(chunk=chunk)

        return await self._stub.PutBlob(messages(), metadata=metadata())

    def read_blob(self, digest: str, *, offset: int = 0,
                  length: int = 0) -> AsyncIterator[pb.ReadBlobResponse]:
        """Stream blob ``digest`` (``length`` 0 = to the end); the first message has the size.

        Unverified bytes: the reader hashes them (``ModelNotFoundError`` when not stored)."""
        request = pb.ReadBlobRequest(digest=digest, offset=offset, length=length)
        return translated_stream(self._stub.ReadBlob(request, metadata=metadata()))

    async def close(self) -> None:
        await self._channel.close()
