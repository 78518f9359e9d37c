"""The registry servicer's transfer RPCs, mixed into ``registry.server.RegistryServicer``.

The class using this mixin sets ``self.transfers`` (a ``TransferService``) in ``__init__``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog

from registry.transfer import manifest_serving
from registry.transfer.service import TransferService
from services.context import ServicerContext
from services.pb.corral.registry.v1 import registry_pb2 as pb

log = structlog.get_logger()


class TransferServicerMixin:
    """PullModel, PushModel, GetManifest and PutManifest over a ``TransferService``."""

    transfers: TransferService

    async def PullModel(self, request: pb.PullModelRequest,
                        context: ServicerContext) -> AsyncIterator[pb.Progress]:
        """Stream Ollama's pull progress lines; errors end the stream with a status."""
        log.info("pull_requested", name=request.name, insecure=request.insecure)
        async for progress in self.transfers.pull(request.name, insecure=request.insecure):
            yield progress

    async def PushModel(self, request: pb.PushModelRequest,
                        context: ServicerContext) -> AsyncIterator[pb.Progress]:
        """Stream Ollama's push progress lines."""
        log.info("push_requested", name=request.name, insecure=request.insecure)
        async for progress in self.transfers.push(request.name, insecure=request.insecure):
            yield progress

    async def GetManifest(self, request: pb.GetManifestRequest,
                          context: ServicerContext) -> pb.GetManifestResponse:
        """A stored manifest's exact bytes for ``/v2/<repository>/manifests/<reference>``."""
        content, media_type, digest = await manifest_serving.get_manifest(
            self.transfers.store, request.repository, request.reference, request.host,
            request.name)
        return pb.GetManifestResponse(content=content, media_type=media_type, digest=digest)

    async def PutManifest(self, request: pb.PutManifestRequest,
                          context: ServicerContext) -> pb.PutManifestResponse:
        """Store a manifest received on the ``/v2/`` write side."""
        digest = await manifest_serving.put_manifest(self.transfers.store, request.repository,
                                            request.reference, request.content, request.host,
                                            request.name)
        return pb.PutManifestResponse(digest=digest)
