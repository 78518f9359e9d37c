"""The registry's gRPC servicer and its startup sequence.

Startup order: blobs dir and stale temp files, engine, migrations, store, sync with the manifest
files on disk (an Ollama store's models), startup prune (unless OLLAMA_NOPRUNE), server bound but
NOT_SERVING, embedded model (only into an empty store), SERVING, then two background tasks: the
manifest-tree watcher and the blob verifier. Shutdown runs the same steps backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from registry.blob_stream import BlobStreamServicerMixin
from registry.blobs import BlobStore
from registry.db import is_postgres, migrate, open_database, session_factory
from registry.embedded import ensure_embedded_model
from registry.indexer import ManifestIndexer
from registry.integrity import BlobVerifier
from registry.keys import KeyStore
from registry.lifecycle import prune_at_startup
from registry.servicer_keys import KeysServicerMixin
from registry.replicas import watch_model_changes
from registry.responses import model_summary, resolve_response
from registry.servicer_models import ModelsServicerMixin
from registry.servicer_store import StoreServicerMixin
from registry.status import StatusServicerMixin
from registry.store import ModelStore
from registry.transfer.service import TransferService, options_from_settings
from registry.servicer_transfer import TransferServicerMixin
from services.context import ServicerContext
from services.errors import CorralError
from services.grpc_server import GrpcService
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.pb.corral.registry.v1 import registry_pb2_grpc
from services.settings import RegistrySettings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Registry"].full_name
BLOBS_DIRNAME = "blobs"
REPLICA_TEMP_GRACE_S = 3600.0  # as the startup prune's grace: a live write touches its file

log = structlog.get_logger()


class RegistryServicer(ModelsServicerMixin, TransferServicerMixin, StoreServicerMixin,
                       KeysServicerMixin, StatusServicerMixin, BlobStreamServicerMixin,
                       registry_pb2_grpc.RegistryServicer):
    """Thin translation between protobuf messages and ``ModelStore`` calls."""

    def __init__(self, store: ModelStore, transfers: TransferService | None = None, *,
                 verifier: BlobVerifier | None = None, indexer: ManifestIndexer | None = None,
                 keys: KeyStore | None = None) -> None:
        self._store = store
        self.transfers = transfers or TransferService(store)
        self.verifier = verifier or BlobVerifier(store)
        self.indexer = indexer or ManifestIndexer(store, on_indexed=self.verifier.wake)
        self._keys = keys or KeyStore(store.sessions)

    async def ResolveModel(self, request: pb.ResolveModelRequest,
                           context: ServicerContext) -> pb.ResolveModelResponse:
        """The model called ``request.name``; NOT_FOUND / INVALID_ARGUMENT otherwise, and
        DATA_LOSS naming the digest when one of its blobs is missing or corrupt."""
        resolved = await self._store.resolve(request.name, check=self.verifier.ensure_loadable)
        log.info("model_resolved", name=request.name, digest=resolved.record.digest[:12])
        return resolve_response(resolved)

    async def ListModels(self, request: pb.ListModelsRequest,
                         context: ServicerContext) -> pb.ListModelsResponse:
        """Every local model, newest first, with its capabilities (as ``/api/tags`` has them)."""
        summaries = []
        for record in await self._store.list_models():
            summary = model_summary(record)
            try:
                summary.capabilities.extend(
                    await self._shower.capabilities(record.name.full, record.digest))
            except (CorralError, OSError, ValueError) as exc:  # a broken model is still listed
                log.warning("capabilities_unknown", model=record.name.display, error=str(exc))
            summaries.append(summary)
        return pb.ListModelsResponse(models=summaries)


@asynccontextmanager
async def running_registry(settings: RegistrySettings) -> AsyncIterator[GrpcService]:
    """Serve the registry for the duration of the block; yields the started ``GrpcService``."""
    blobs = BlobStore(settings.models_dir / BLOBS_DIRNAME)
    await asyncio.to_thread(blobs.root.mkdir, parents=True, exist_ok=True)
    async with (open_database(settings.models_dir, settings.database_url) as engine,
                contextlib.AsyncExitStack() as stack):
        # Replicas (PostgreSQL) may share the blob directory: spare their writes in progress.
        min_age = REPLICA_TEMP_GRACE_S if is_postgres(engine) else 0.0
        await asyncio.to_thread(blobs.remove_stale_temp_files, min_age)
        await migrate(engine)
        store = ModelStore(session_factory(engine), blobs, noprune=settings.noprune)
        await stack.enter_async_context(watch_model_changes(engine, store))
        await asyncio.to_thread(store.manifest_files.remove_stale_temp_files)
        verifier = BlobVerifier(store)
        indexer = ManifestIndexer(store, on_indexed=verifier.wake)
        await indexer.sync()
        await prune_at_startup(store)
        service = GrpcService(settings.address, [SERVICE_NAME], settings.grpc_tls)
        transfers = TransferService(store, options_from_settings(settings))
        keys = KeyStore(store.sessions)
        registry_pb2_grpc.add_RegistryServicer_to_server(
            RegistryServicer(store, transfers, verifier=verifier, indexer=indexer, keys=keys),
            service.server)
        await service.start()
        background = [asyncio.create_task(indexer.watch()), asyncio.create_task(verifier.run())]
        try:
            await ensure_embedded_model(store, enabled=settings.embedded_model)
            await service.set_serving(True)
            yield service
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await service.stop()
            await transfers.close()
            await keys.close()
