"""``ModelRef``: the part of the registry's ResolveModelResponse that the scheduler and the runner
spec need, built once per request (``ModelRef.of``) and immutable from then on.

The scheduler used to take the whole protobuf reply, typed ``Any``, and reached into it at a dozen
places (``resolved.model.digest``, ``getattr(resolved, "projector_paths", ())``). A frozen
dataclass names what a runner depends on; a field the registry adds (KV bytes per token, layer
counts) is one line here and one in ``of``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.pb.corral.registry.v1 import registry_pb2 as rpb


@dataclass(frozen=True)
class ModelRef:
    """One resolved model, as a runner is started for it and ``/api/ps`` shows it."""

    summary: rpb.ModelSummary  # name, digest, size, details (what /api/ps reports)
    model_path: str  # the GGUF weights, a local file
    adapter_paths: tuple[str, ...] = ()  # LoRA adapters, applied in order
    projector_paths: tuple[str, ...] = ()  # multimodal projectors (llama.cpp loads the first)
    kv_bytes_per_token: int = 0  # f16 KV cache bytes per context cell (the registry reads it)

    @classmethod
    def of(cls, resolved: rpb.ResolveModelResponse) -> ModelRef:
        """The reference to ``resolved`` (its paths already local: see ``blob_cache.localize``)."""
        summary = rpb.ModelSummary()
        summary.CopyFrom(resolved.model)  # a copy: the reply may be reused and mutated
        return cls(summary=summary, model_path=resolved.model_path,
                   adapter_paths=tuple(resolved.adapter_paths),
                   projector_paths=tuple(resolved.projector_paths),
                   kv_bytes_per_token=resolved.kv_cache_shape.f16_bytes_per_token)

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def digest(self) -> str:
        """The manifest digest: runners are shared per digest (and embedding mode)."""
        return self.summary.digest
