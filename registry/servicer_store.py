"""The registry servicer's store-keeping RPCs, mixed into ``registry.server.RegistryServicer``:
``Rescan`` (sync with the Ollama manifest files) and ``VerifyBlobs`` (re-hash, repair).

The class using this mixin sets ``self.indexer`` and ``self.verifier``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


from registry.indexer import ManifestIndexer
from registry.integrity import CORRUPT, MISSING, SOUND, BlobVerifier
from services.context import ServicerContext
from services.pb.corral.registry.v1 import registry_pb2 as pb

_STATES = {SOUND: pb.BlobVerification.STATE_SOUND, CORRUPT: pb.BlobVerification.STATE_CORRUPT,
           MISSING: pb.BlobVerification.STATE_MISSING}


class StoreServicerMixin:
    """Rescan and VerifyBlobs over ``self.indexer`` / ``self.verifier``."""

    indexer: ManifestIndexer
    verifier: BlobVerifier

    async def Rescan(self, request: pb.RescanRequest,
                     context: ServicerContext) -> pb.RescanResponse:
        """Sync the database with the manifest files now."""
        report = await self.indexer.sync()
        return pb.RescanResponse(indexed=report.indexed, removed=report.removed,
                                 exported=report.exported, skipped=report.skipped)

    async def VerifyBlobs(self, request: pb.VerifyBlobsRequest,
                          context: ServicerContext
                          ) -> AsyncIterator[pb.BlobVerification]:
        """Re-hash one model's blobs (NOT_FOUND for an unknown model) or all of them."""
        async for phase, verdict, models in self.verifier.verify_all(request.name,
                                                                    repair=request.repair):
            state = (pb.BlobVerification.STATE_HASHING if phase == "hashing"
                     else _STATES[verdict.state])
            yield pb.BlobVerification(digest=verdict.digest, state=state, size=verdict.size,
                                      actual_digest=verdict.actual, models=models,
                                      quarantined=verdict.quarantined)
