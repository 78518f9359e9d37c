"""Registry records as the protobuf messages its RPCs answer with (``ResolveModelResponse``,
``ModelSummary``): shared by ``registry.server`` and the servicer mixins, so none of them has
to import another."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from registry.manifests import ADAPTER_MEDIA_TYPE, MODEL_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE
from registry.store import ModelRecord, ResolvedModel
from services.pb.corral.registry.v1 import registry_pb2 as pb


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
