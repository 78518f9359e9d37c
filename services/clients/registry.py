"""Client of the registry process."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator

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

    PEER = "model registry"

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

    def pull(self, name: str, *, insecure: bool = False) -> AsyncGenerator[pb.Progress, None]:
        """Pull ``name`` from its registry: Ollama's progress lines; closing cancels the pull."""
        request = pb.PullModelRequest(name=name, insecure=insecure)
        return translated_stream(self._stub.PullModel(request, metadata=metadata()), self.PEER)

    def push(self, name: str, *, insecure: bool = False) -> AsyncGenerator[pb.Progress, None]:
        """Push the local model ``name`` to the registry its name points at."""
        request = pb.PushModelRequest(name=name, insecure=insecure)
        return translated_stream(self._stub.PushModel(request, metadata=metadata()), self.PEER)

    @translating
    async def get_manifest(self, repository: str = "", reference: str = "",
                           host: str = "", *, name: str = "") -> pb.GetManifestResponse:
        """A stored manifest's exact bytes (``ModelNotFoundError`` when unknown); ``name`` looks
        up one exact local model instead of a ``/v2/`` repository and reference."""
        request = pb.GetManifestRequest(repository=repository, reference=reference, host=host,
                                        name=name)
        return await self._stub.GetManifest(request, metadata=metadata())

    @translating
    async def put_manifest(self, repository: str, reference: str, content: bytes,
                           host: str = "", *, name: str = "") -> str:
        """Store a manifest whose blobs are all stored; returns its ``sha256:`` digest."""
        request = pb.PutManifestRequest(repository=repository, reference=reference,
                                        content=content, host=host, name=name)
        return (await self._stub.PutManifest(request, metadata=metadata())).digest

    @translating
    async def rescan(self) -> pb.RescanResponse:
        """Sync the registry's database with the manifest files on disk now."""
        return await self._stub.Rescan(pb.RescanRequest(), metadata=metadata())

    def verify_blobs(self, name: str = "", *, repair: bool = False
                     ) -> AsyncGenerator[pb.BlobVerification, None]:
        """Re-hash one model's blobs (or all): an event before and after each blob."""
        request = pb.VerifyBlobsRequest(name=name, repair=repair)
        return translated_stream(self._stub.VerifyBlobs(request, metadata=metadata()))

    # -- model management (create/show/copy/delete/blobs) --------------------------------------

    @translating
    async def show(self, name: str) -> pb.ShowModelResponse:
        """What ``/api/show`` reports; ``ModelNotFoundError`` (``model 'NAME:TAG' not found``)."""
        return await self._stub.ShowModel(pb.ShowModelRequest(name=name), metadata=metadata())

    def create(self, request: pb.CreateModelRequest) -> AsyncGenerator[pb.Progress, None]:
        """Build a model from Ollama's JSON create form: its progress lines, ``success`` last."""
        return translated_stream(self._stub.CreateModel(request, metadata=metadata()), self.PEER)

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

    # -- API keys (only hashes travel; see services.apikeys) ------------------------------------

    @translating
    async def create_key(self, request: pb.CreateKeyRequest) -> pb.ApiKey:
        """Store a key (``ConflictError`` when the name is taken); returns its description."""
        return (await self._stub.CreateKey(request, metadata=metadata())).key

    @translating
    async def list_keys(self) -> list[pb.ApiKey]:
        reply = await self._stub.ListKeys(pb.ListKeysRequest(), metadata=metadata())
        return list(reply.keys)

    @translating
    async def revoke_key(self, name: str) -> None:
        """Delete the key ``name`` (``KeyNotFoundError`` when there is none)."""
        await self._stub.RevokeKey(pb.RevokeKeyRequest(name=name), metadata=metadata())

    @translating
    async def check_key(self, key_hash: str = "") -> pb.CheckKeyResponse:
        """Whether keys exist and, given a hash, the state of that key."""
        return await self._stub.CheckKey(pb.CheckKeyRequest(key_hash=key_hash), metadata=metadata())

    @translating
    async def status(self, timeout: float | None = None) -> pb.GetStatusResponse:
        """Schema revision and store size (readiness probes, ``/metrics``)."""
        return await self._stub.GetStatus(pb.GetStatusRequest(), metadata=metadata(),
                                          timeout=timeout)

    def read_blob(self, digest: str, *, offset: int = 0,
                  length: int = 0) -> AsyncGenerator[pb.ReadBlobResponse, None]:
        """Stream blob ``digest`` (``length`` 0 = to the end); the first message has the size.

        Unverified bytes: the reader hashes them (``ModelNotFoundError`` when not stored)."""
        request = pb.ReadBlobRequest(digest=digest, offset=offset, length=length)
        return translated_stream(self._stub.ReadBlob(request, metadata=metadata()))

    async def close(self) -> None:
        await self._channel.close()
