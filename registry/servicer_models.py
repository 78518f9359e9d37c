"""The registry servicer's model-management RPCs, mixed into ``registry.server.RegistryServicer``.

ShowModel, CreateModel, CopyModel, DeleteModel, StatBlob and PutBlob: protobuf in, calls into
``registry.show`` / ``registry.create`` / ``ModelStore`` / ``registry.lifecycle``, protobuf out.
The class using this mixin sets ``self._store`` (a ``ModelStore``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import structlog
from google.protobuf.json_format import MessageToDict

from registry.create import CreateRequest, ModelCreator
from registry.lifecycle import put_blob, stat_blob
from registry.responses import resolve_response
from registry.show import ModelShower
from registry.store import ModelStore
from registry.transfer.service import TransferService
from services.context import ServicerContext
from services.errors import InvalidRequestError
from services.pb.corral.registry.v1 import registry_pb2 as pb

log = structlog.get_logger()


class ModelsServicerMixin:
    """Model management over ``self._store``; create-from-remote pulls through
    ``self.transfers`` (both set by ``RegistryServicer``)."""

    _store: ModelStore
    transfers: TransferService

    @functools.cached_property
    def _shower(self) -> ModelShower:
        return ModelShower(self._store)

    @functools.cached_property
    def _creator(self) -> ModelCreator:
        transfers = self.transfers
        return ModelCreator(self._store, lambda name: transfers.pull(name, insecure=False))

    async def ShowModel(self, request: pb.ShowModelRequest,
                        context: ServicerContext) -> pb.ShowModelResponse:
        """Everything ``/api/show`` needs; NOT_FOUND says ``model 'NAME:TAG' not found``."""
        shown = await self._shower.show(request.name)
        resolved = resolve_response(shown.resolved)
        response = pb.ShowModelResponse(
            model=resolved.model, model_path=resolved.model_path, template=resolved.template,
            chat_template=resolved.chat_template, system=resolved.system,
            license=shown.resolved.licenses, messages=resolved.messages,
            capabilities=shown.capabilities, adapters=shown.adapters,
            renderer=resolved.renderer, parser=resolved.parser,
            projectors=shown.projectors, adapter_paths=resolved.adapter_paths,
            projector_paths=resolved.projector_paths)
        response.model.details.parent_model = shown.resolved.parent_model
        response.parameters.CopyFrom(resolved.parameters)
        response.model_info.update(shown.model_info)
        if shown.projector_info:
            response.projector_info.update(shown.projector_info)
        return response

    async def CreateModel(self, request: pb.CreateModelRequest,
                          context: ServicerContext) -> AsyncIterator[pb.Progress]:
        """Build a model from Ollama's JSON create form, streaming its progress lines."""
        log.info("create_requested", name=request.name, base=getattr(request, "from"),
                 files=len(request.files), quantize=request.quantize)
        async for progress in self._creator.create(create_request(request)):
            yield pb.Progress(**progress)

    async def CopyModel(self, request: pb.CopyModelRequest,
                        context: ServicerContext) -> pb.CopyModelResponse:
        """Give ``source``'s manifest the name ``destination`` too."""
        record = await self._store.copy_model(request.source, request.destination)
        log.info("model_copied", source=request.source, destination=record.name.display)
        return pb.CopyModelResponse()

    async def DeleteModel(self, request: pb.DeleteModelRequest,
                          context: ServicerContext) -> pb.DeleteModelResponse:
        """Remove a name and prune the blobs nothing else uses."""
        return pb.DeleteModelResponse(pruned=await self._store.delete_model(request.name))

    async def StatBlob(self, request: pb.StatBlobRequest,
                       context: ServicerContext) -> pb.StatBlobResponse:
        """Whether a blob is stored; INVALID_ARGUMENT ``invalid digest format`` for a bad one."""
        stat = await stat_blob(self._store.blobs, request.digest)
        return pb.StatBlobResponse(exists=stat.exists, size=stat.size, path=str(stat.path))

    async def PutBlob(self, request_iterator: AsyncIterator[pb.PutBlobRequest],
                      context: ServicerContext) -> pb.PutBlobResponse:
        """First message: the digest; then chunks. DATA_LOSS when the bytes do not match."""
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("part") != "digest":
            raise InvalidRequestError("a blob upload starts with its digest")
        created, size = await put_blob(self._store.blobs, first.digest, _chunks(request_iterator))
        return pb.PutBlobResponse(created=created, size=size)


async def _chunks(messages: AsyncIterator[pb.PutBlobRequest]) -> AsyncIterator[bytes]:
    async for message in messages:
        if message.WhichOneof("part") != "chunk":
            raise InvalidRequestError("a blob upload sends its digest only once")
        yield message.chunk


def create_request(request: pb.CreateModelRequest) -> CreateRequest:
    """The proto's create form as ``registry.create.CreateRequest``."""
    parameters = MessageToDict(request.parameters) if request.HasField("parameters") else {}
    return CreateRequest(
        name=request.name, from_=getattr(request, "from"), files=dict(request.files),
        adapters=dict(request.adapters), template=request.template, system=request.system,
        parameters=parameters,
        messages=[{"role": m.role, "content": m.content} for m in request.messages],
        licenses=list(request.license), quantize=request.quantize,
        renderer=request.renderer if request.HasField("renderer") else None,
        parser=request.parser if request.HasField("parser") else None)
