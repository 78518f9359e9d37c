"""``/v1/models`` and ``/v1/models/{model}``."""

from __future__ import annotations

from services.clients.registry import RegistryClient
from services.errors import InvalidModelNameError, ModelNotFoundError
from services.json_types import JSONObject
from services.names import DEFAULT_NAMESPACE, parse_name
from services.pb.corral.registry.v1 import registry_pb2 as rpb


def _owner(name: str) -> str:
    try:
        return parse_name(name).namespace
    except InvalidModelNameError:
        return DEFAULT_NAMESPACE


def _created(summary: rpb.ModelSummary) -> int:
    return summary.modified_at.seconds if summary.HasField("modified_at") else 0


def model_object(model_id: str, summary: rpb.ModelSummary) -> JSONObject:
    return {"id": model_id, "object": "model", "created": _created(summary),
            "owned_by": _owner(model_id)}


async def list_models(registry: RegistryClient) -> JSONObject:
    """Local models, newest first; ``data`` is ``null`` when there are none (Go's nil slice)."""
    summaries = sorted(await registry.list_models(), key=_created, reverse=True)
    return {"object": "list", "data": [model_object(m.name, m) for m in summaries] or None}


async def retrieve_model(registry: RegistryClient, model_id: str) -> JSONObject:
    """One model by the name in the path (echoed verbatim as ``id``)."""
    try:
        resolved = await registry.resolve(model_id)
    except ModelNotFoundError as exc:
        # /v1/models/{id} runs Ollama's show handler, which names the normalised model
        raise ModelNotFoundError(f"model '{parse_name(model_id).display}' not found") from exc
    return model_object(model_id, resolved.model)
