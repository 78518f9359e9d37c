"""The embedding service behind ``/api/embed``, ``/api/embeddings`` and ``/v1/embeddings``.

Embeddings run in a runner started with ``--embedding`` (the Scheduler keys runners by embedding
mode too), so a model can serve generation and embeddings at once, as Ollama does. The runner
returns raw pooled vectors; the gateway does what Ollama's handlers do: truncate to ``num_ctx``,
L2-normalise (``/api/embed``), cut to ``dimensions`` and re-normalise, reject NaN/Inf, and encode
float32 values with their shortest decimal form.
"""

from __future__ import annotations

import array
import asyncio
import math
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.generation import InferenceService
from gateway.inference_fields import embed_inputs
from gateway.model_ref import ModelRef
from gateway.options import parse_keep_alive
from gateway.schemas import model_name
from services.errors import CorralError, InvalidRequestError, ModelNotFoundError
from services.gocodec import go_quote, typed_field
from services.json_types import JSONObject
from services.pb.corral.registry.v1 import registry_pb2 as rpb
from services.pb.corral.runner.v1 import runner_pb2 as pb


@dataclass(frozen=True)
class EmbeddingParams:
    """The fields both embedding requests share."""

    model: str
    options: JSONObject = field(default_factory=dict)
    keep_alive: float | None = None


def _runner_fields(body: JSONObject, s: str) -> dict[str, Any]:
    """``options`` and ``keep_alive``, parsed last as Ollama checks them."""
    return {"options": typed_field(body, s, "options", "object", default={}),
            "keep_alive": parse_keep_alive(body.get("keep_alive"))}


@dataclass(frozen=True)
class EmbedParams(EmbeddingParams):
    """``POST /api/embed`` (``api.EmbedRequest``)."""

    inputs: list[str] = field(default_factory=list)
    truncate: bool = True
    dimensions: int = 0

    @classmethod
    def parse(cls, body: JSONObject) -> EmbedParams:
        s = "EmbedRequest"
        return cls(model=model_name(body, s), inputs=embed_inputs(body.get("input")),
                   truncate=typed_field(body, s, "truncate", "bool", default=True),
                   dimensions=typed_field(body, s, "dimensions", "int", default=0),
                   **_runner_fields(body, s))


@dataclass(frozen=True)
class EmbeddingsParams(EmbeddingParams):
    """``POST /api/embeddings`` (``api.EmbeddingRequest``, the legacy single-prompt form)."""

    prompt: str = ""

    @classmethod
    def parse(cls, body: JSONObject) -> EmbeddingsParams:
        s = "EmbeddingRequest"
        return cls(model=model_name(body, s),
                   prompt=typed_field(body, s, "prompt", "string", default=""),
                   **_runner_fields(body, s))


class EmbeddingService:
    """Embeddings over the InferenceService's registry, options and scheduler."""

    def __init__(self, inference: InferenceService) -> None:
        self.inference = inference

    async def embed(self, p: EmbedParams) -> JSONObject:
        """Ollama's ``EmbedResponse``: one normalised vector per input (``[]`` for no input)."""
        started = time.monotonic_ns()
        reply, load_ns = await self._run(p.model, p.inputs, truncate=p.truncate, options=p.options,
                                         keep_alive=p.keep_alive,
                                         empty=ModelNotFoundError("model '' not found"))
        if reply is None:
            return {"model": p.model, "embeddings": []}
        vectors = await asyncio.to_thread(
            lambda: [normalized(e.values, p.dimensions) for e in reply.embeddings])
        return {"model": p.model, "embeddings": vectors,
                "total_duration": time.monotonic_ns() - started, "load_duration": load_ns,
                "prompt_eval_count": reply.prompt_eval_count}

    async def embeddings(self, p: EmbeddingsParams) -> JSONObject:
        """The legacy ``{"embedding": [...]}``: one vector, not normalised, float64 values."""
        inputs = [p.prompt] if p.prompt else []
        # Legacy requests have no truncate flag; cutting to the context beats failing.
        reply, _ = await self._run(p.model, inputs, truncate=True, options=p.options,
                                   keep_alive=p.keep_alive,
                                   empty=InvalidRequestError("model is required"))
        if reply is None:
            return {"embedding": []}
        values = list(reply.embeddings[0].values)
        check_finite(values)
        return {"embedding": values}

    async def _run(self, name: str, inputs: list[str], *, truncate: bool, options: JSONObject,
                   keep_alive: float | None, empty: CorralError
                   ) -> tuple[pb.EmbedResponse | None, int]:
        """Load the model's embedding runner and embed ``inputs`` (``None`` when there are none)."""
        resolved = await self._resolve(name, empty)
        merged = self.inference.options(resolved, options)
        num_ctx, scheduler = merged.num_ctx, self.inference.scheduler
        async with scheduler.acquire(ModelRef.of(resolved), num_ctx, keep_alive, embedding=True,
                                     load=merged.load_options()) as lease:
            if not inputs:
                return None, lease.load_duration_ns
            # The runner cuts (or refuses) inputs longer than the request's num_ctx, which may be
            # smaller than a shared runner's context.
            reply = await lease.embed(pb.EmbedRequest(inputs=inputs, truncate=truncate,
                                                             num_ctx=num_ctx))
            return reply, lease.load_duration_ns

    async def _resolve(self, name: str, empty: CorralError) -> rpb.ResolveModelResponse:
        try:
            return await self.inference.resolve(name, empty=empty)
        except ModelNotFoundError as exc:
            if exc is empty:
                raise
            # embed/embeddings word it as Ollama's scheduler does (%q quoting)
            raise ModelNotFoundError(f"model {go_quote(name)} not found, try pulling it first") \
                from exc


# -- vectors --------------------------------------------------------------------------------------

def check_finite(values: Iterable[float]) -> None:
    if not all(math.isfinite(v) for v in values):
        raise CorralError("embedding contains NaN or Inf values")


def normalized(values: Iterable[float], dimensions: int = 0) -> list[float]:
    """L2-normalise in float32 (as Ollama's ``normalize``), then cut to ``0 < dimensions < len``
    and normalise again; floats come back in their shortest float32 decimal form."""
    vector = array.array("f", values)
    check_finite(vector)
    vector = _unit(vector)
    if 0 < dimensions < len(vector):
        vector = _unit(vector[:dimensions])
    return [shortest_float32(v) for v in vector]


def _unit(vector: array.array[float]) -> array.array[float]:
    norm = math.sqrt(math.fsum(v * v for v in vector))
    scale = array.array("f", [1.0 / max(norm, 1e-12)])[0]
    return array.array("f", (v * scale for v in vector))


_FLOAT32 = struct.Struct("f")


def shortest_float32(value: float) -> float:
    """The float whose ``repr`` is the shortest decimal that reads back as the same float32
    (Go encodes ``[]float32`` that way: ``0.010071029``, not ``0.010071028955280781``)."""
    for digits in range(6, 10):  # 9 significant digits always round-trip a float32
        candidate = float(f"{value:.{digits}g}")
        if _FLOAT32.unpack(_FLOAT32.pack(candidate))[0] == value:
            return candidate
    return value
