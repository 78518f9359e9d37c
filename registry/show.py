"""``ShowModel``: everything ``/api/show`` reports that only the registry can know.

The gateway builds the Modelfile text and the ``parameters`` listing from these parts; here we
add the GGUF key/values (``model_info``) and Ollama's capability rules on top of a resolved
model. Header scans are cached per weights blob: a blob's content never changes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.gguf_kv import GGUFHeader, SkippedArray, model_info, scan_header
from registry.manifests import ADAPTER_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE
from registry.store import ModelStore, ResolvedModel
from services.errors import ModelNotFoundError
from services.names import parse_name

_CACHE_SIZE = 16


@dataclass(frozen=True)
class ShownModel:
    """A resolved model plus its GGUF key/values and capabilities."""

    resolved: ResolvedModel
    model_info: dict[str, Any]
    capabilities: list[str]
    projector_info: dict[str, Any] = field(default_factory=dict)

    @property
    def adapters(self) -> list[str]:
        return self.resolved.layer_digests(ADAPTER_MEDIA_TYPE)

    @property
    def projectors(self) -> list[str]:
        return self.resolved.layer_digests(PROJECTOR_MEDIA_TYPE)


class ModelShower:
    """Answers ``ShowModel`` over a ``ModelStore``, caching header scans by blob path."""

    def __init__(self, store: ModelStore) -> None:
        self._store = store
        self._headers: OrderedDict[Path, GGUFHeader] = OrderedDict()
        self._capabilities: dict[str, list[str]] = {}  # by manifest digest: never changes

    async def capabilities(self, text: str, manifest_digest: str) -> list[str]:
        """``/api/tags``' capabilities of model ``text``; computed once per manifest."""
        if (known := self._capabilities.get(manifest_digest)) is None:
            known = (await self.show(text)).capabilities
            self._capabilities[manifest_digest] = known
        return known

    async def show(self, text: str) -> ShownModel:
        """The model ``text``; ``ModelNotFoundError`` says ``model 'NAME:TAG' not found`` with
        the name in display form (Ollama HEAD), ``InvalidModelNameError`` for a bad name."""
        try:
            resolved = await self._store.resolve(text)
        except ModelNotFoundError:
            raise ModelNotFoundError(f"model '{parse_name(text).display}' not found") from None
        header = await self._header(resolved.model_path)
        projector = {}
        if resolved.projector_paths:  # Ollama shows the first projector's key/values
            projector = projector_info(await self._header(resolved.projector_paths[0]))
        return ShownModel(resolved=resolved, model_info=model_info(header),
                          capabilities=capabilities(header.kv, bool(projector)),
                          projector_info=projector)

    async def _header(self, path: Path) -> GGUFHeader:
        if path in self._headers:
            self._headers.move_to_end(path)
            return self._headers[path]
        header = await asyncio.to_thread(scan_header, path)
        self._headers[path] = header
        while len(self._headers) > _CACHE_SIZE:
            self._headers.popitem(last=False)
        return header


def projector_info(header: GGUFHeader) -> dict[str, Any]:
    """``/api/show``'s ``projector_info``: every key of the projector GGUF (``general.name``
    included, as Ollama's ``getModelData`` keeps it), long arrays as ``[]``, plus
    ``general.parameter_count``."""
    info = {key: [] if isinstance(value, SkippedArray) else value
            for key, value in header.kv.items()}
    info["general.parameter_count"] = header.parameter_count
    return dict(sorted(info.items()))


def capabilities(kv: dict[str, Any], has_projector: bool) -> list[str]:
    """The capabilities the weights decide, with Ollama's rules and order: ``embedding`` when
    the GGUF declares ``<arch>.pooling_type``, else ``completion``; ``vision`` for
    ``<arch>.vision.block_count`` or a projector layer. What the template decides (``tools``,
    ``insert``, ``thinking``) the gateway adds, with the same code that checks requests
    (``gateway.prompt.PromptTemplate.capabilities``), so show and chat cannot disagree.
    """
    arch = str(kv.get("general.architecture", ""))
    found = ["embedding" if f"{arch}.pooling_type" in kv else "completion"]
    if f"{arch}.vision.block_count" in kv or has_projector:
        found.append("vision")
    return found
