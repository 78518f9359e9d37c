"""What the registry reports about a model: ``/api/tags`` records and resolved models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from registry.gguf_info import GGUFInfo, KvShape
from registry.manifests import MODEL_MEDIA_TYPE, Manifest
from services.names import ModelName


@dataclass(frozen=True)
class ModelDetails:
    """Ollama's ``details`` object."""

    format: str = "gguf"
    family: str = ""
    families: tuple[str, ...] = ()
    parameter_size: str = ""
    quantization_level: str = ""
    context_length: int = 0
    embedding_length: int = 0
    parent_model: str = ""


@dataclass(frozen=True)
class ModelRecord:
    """One local model as ``/api/tags`` lists it."""

    name: ModelName
    digest: str
    size: int
    modified_at: datetime
    details: ModelDetails


@dataclass(frozen=True)
class ResolvedModel:
    """A model plus everything a runner and the prompt builder need."""

    record: ModelRecord
    model_path: Path
    template: str = ""
    chat_template: str = ""
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    bos_token: str = ""
    eos_token: str = ""
    manifest: Manifest | None = None
    licenses: list[str] = field(default_factory=list)
    adapter_paths: list[Path] = field(default_factory=list)
    renderer: str = ""  # the config's named renderer and parser (Modelfile RENDERER/PARSER)
    parser: str = ""
    projector_paths: list[Path] = field(default_factory=list)
    kv_shape: KvShape | None = None  # None: the weights' header could not be read

    @property
    def parent_model(self) -> str:
        """Ollama's ``details.parent_model``: the ``from`` of the weights layer."""
        layer = self.manifest.layer(MODEL_MEDIA_TYPE) if self.manifest else None
        return layer.from_ if layer else ""

    def layer_digests(self, media_type: str) -> list[str]:
        """Digests of every layer of ``media_type`` (adapters, projectors), in order."""
        layers = self.manifest.layers if self.manifest else ()
        return [layer.digest for layer in layers if layer.media_type == media_type]


def details_of(config: Mapping[str, Any], info: GGUFInfo | None) -> ModelDetails:
    """Ollama's details: the config blob first (it travels with pulls), GGUF facts for the rest."""
    families = config.get("model_families") or ([info.architecture] if info else [])
    return ModelDetails(
        format=config.get("model_format") or "gguf",
        family=config.get("model_family") or (info.architecture if info else ""),
        families=tuple(families),
        parameter_size=config.get("model_type") or (info.parameter_size if info else ""),
        quantization_level=config.get("file_type") or (info.quantization if info else ""),
        context_length=info.context_length if info else 0,
        embedding_length=info.embedding_length if info else 0,
    )
