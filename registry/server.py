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

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from registry.blob_stream import BlobStreamServicerMixin
from registry.blobs import BlobStore
from registry.db import is_postgres, migrate, open_database, session_factory
from registry.embedded import ensure_embedded_model
from registry.indexer import ManifestIndexer
from registry.integrity import BlobVerifier
from registry.keys import KeyStore
from registry.lifecycle import prune_at_startup
from registry.servicer_keys import KeysServicerMixin
from registry.manifests import ADAPTER_MEDIA_TYPE, MODEL_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE
from registry.replicas import watch_model_changes
from registry.servicer_models import ModelsServicerMixin
from registry.servicer_store import StoreServicerMixin
from registry.status import StatusServicerMixin
from registry.store import ModelRecord, ModelStore, ResolvedModel
from registry.transfer.service import TransferService, options_from_settings
from registry.transfer.servicer import TransferServicerMixin
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
                           context: grpc.aio.ServicerContext) -> pb.ResolveModelResponse:
        """The model called ``request.name``; NOT_FOUND / INVALID_ARGUMENT otherwise, and
        DATA_LOSS naming the digest when one of its blobs is missing or corrupt."""
        resolved = await self._store.resolve(request.name, check=self.verifier.ensure_loadable)
        log.info("model_resolved", name=request.name, digest=resolved.record.digest[:12])
        return resolve_response(resolved)

    async def ListModels(self, request: pb.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
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


def model_summary(record: ModelRecord) -> pb.ModelSummary:
    """A ``ModelRecord`` as the proto's ``ModelSummary``."""
    modified = Timestamp()
    modified.FromDatetime(record.modified_at)
    details = record.details
    return pb.ModelSummary(
        name=record.name.display, digest=record.digest, size=record.size, modified_at=modified,
        details=pb.ModelDetails(
            parent_model=details.parent_model, format=details.format, family=details.family,
            families=list(details.families), parameter_size=details.parameter_size,
            quantization_level=details.quantization_level,
            context_length=details.context_length, embedding_length=details.embedding_length))


def resolve_response(model: ResolvedModel) -> pb.ResolveModelResponse:
    """A ``ResolvedModel`` as the proto's ``ResolveModelResponse``."""
    response = pb.ResolveModelResponse(
        model=model_summary(model.record), model_path=str(model.model_path),
        template=model.template, chat_template=model.chat_template, system=model.system,
        messages=[pb.Message(role=m.get("role", ""), content=m.get("content", ""))
                  for m in model.messages],
        bos_token=model.bos_token, eos_token=model.eos_token,
        adapter_paths=[str(path) for path in model.adapter_paths],
        renderer=model.renderer, parser=model.parser,
        projector_paths=[str(path) for path in model.projector_paths],
        blobs=runner_blobs(model))
    response.parameters.update(model.parameters)
    if (shape := model.kv_shape) is not None:
        response.kv_cache_shape.CopyFrom(pb.KvCacheShape(
            block_count=shape.block_count, head_count=shape.head_count,
            head_count_kv=shape.head_count_kv, key_length=shape.key_length,
            value_length=shape.value_length, f16_bytes_per_token=shape.f16_bytes_per_token))
    return response


def runner_blobs(model: ResolvedModel) -> list[pb.BlobRef]:
    """The weights, adapter and projector blobs, in the order of ``model_path``, then
    ``adapter_paths``, then ``projector_paths``."""
    layers = model.manifest.layers if model.manifest else ()
    weights = [layer for layer in layers if layer.media_type == MODEL_MEDIA_TYPE][:1]
    adapters = [layer for layer in layers if layer.media_type == ADAPTER_MEDIA_TYPE]
    projectors = [layer for layer in layers if layer.media_type == PROJECTOR_MEDIA_TYPE]
    pairs = [*zip(weights, [model.model_path]), *zip(adapters, model.adapter_paths, strict=True),
             *zip(projectors, model.projector_paths, strict=True)]
    return [pb.BlobRef(digest=layer.digest, size=layer.size, path=str(path))
            for layer, path in pairs]
