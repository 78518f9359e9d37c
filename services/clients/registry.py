"""Client of the registry process."""

from __future__ import annotations

import grpc

from services.clients.base import metadata, translating
from services.grpc_server import wait_for_serving
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.pb.corral.registry.v1 import registry_pb2_grpc


class RegistryClient:
    """Typed access to the registry's RPCs; errors arrive as ``CorralError``."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel = grpc.aio.insecure_channel(target)
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

    async def close(self) -> None:
        await self._channel.close()
