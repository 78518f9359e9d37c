"""Ollama's manifest and config formats (Docker image manifest v2, schema 2).

Bytes matter: a model's id is the sha256 of its manifest bytes, and Ollama's params/messages
digests depend on Go's encoder. ``services.gocodec.encode_json`` with ``newline`` reproduces
``json.Encoder`` output (compact, HTML characters escaped, trailing newline), so what we build
hashes as Ollama's would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from registry.blobs import canonical_digest
from registry.gguf_info import GGUFInfo
from services.errors import InvalidRequestError
from services.gocodec import encode_json

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
TEMPLATE_MEDIA_TYPES = ("application/vnd.ollama.image.template", "application/vnd.ollama.image.prompt")
SYSTEM_MEDIA_TYPE = "application/vnd.ollama.image.system"
PARAMS_MEDIA_TYPE = "application/vnd.ollama.image.params"
MESSAGES_MEDIA_TYPE = "application/vnd.ollama.image.messages"
LICENSE_MEDIA_TYPE = "application/vnd.ollama.image.license"
ADAPTER_MEDIA_TYPE = "application/vnd.ollama.image.adapter"
PROJECTOR_MEDIA_TYPE = "application/vnd.ollama.image.projector"


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor; ``from_`` and ``name`` are Ollama's optional extras."""

    media_type: str
    digest: str
    size: int
    from_: str = ""
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        """Go's field order; the extras only when set (``omitempty``)."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            out["from"] = self.from_
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Descriptor:
        return cls(media_type=str(raw["mediaType"]), digest=canonical_digest(str(raw["digest"])),
                   size=int(raw["size"]), from_=str(raw.get("from") or ""),
                   name=str(raw.get("name") or ""))


@dataclass(frozen=True)
class Manifest:
    """A schema2 manifest: one config descriptor and the layers, in order."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = MANIFEST_MEDIA_TYPE

    @property
    def size(self) -> int:
        """What ``/api/tags`` reports: every layer plus the config."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def layer(self, media_type: str) -> Descriptor | None:
        """The first layer of ``media_type``, if any."""
        return next((layer for layer in self.layers if layer.media_type == media_type), None)

    def to_bytes(self) -> bytes:
        """The bytes Ollama's ``WriteManifest`` would write for this manifest."""
        return encode_json({"schemaVersion": 2, "mediaType": self.media_type,
                            "config": self.config.to_json(),
                            "layers": [layer.to_json() for layer in self.layers]},
                           newline=True)

    @classmethod
    def parse(cls, content: bytes) -> Manifest:
        """Parse manifest bytes; ``ValueError`` when they are not a schema2 manifest."""
        try:
            raw = json.loads(content)
            return cls(config=Descriptor.from_json(raw["config"]),
                       layers=tuple(Descriptor.from_json(layer) for layer in raw["layers"]),
                       media_type=str(raw.get("mediaType") or MANIFEST_MEDIA_TYPE))
        except (KeyError, TypeError, AttributeError, InvalidRequestError) as exc:
            raise ValueError(f"malformed manifest: {exc}") from exc


def gguf_config(info: GGUFInfo) -> bytes:
    """The config blob ``ollama create`` writes for a GGUF model (``ConfigV2``)."""
    return encode_json({
        "model_format": "gguf",
        "model_family": info.architecture,
        "model_families": [info.architecture] if info.architecture else None,
        "model_type": info.parameter_size,
        "file_type": info.quantization,
        "architecture": "amd64",  # fixed placeholders "required by spec", as Ollama writes
        "os": "linux",
    }, newline=True)
