"""``CreateModel``: Ollama's JSON create form turned into layers, a config and a manifest.

Semantics follow ``server/create.go``: the base layers come from ``from`` (every layer of an
existing model, tagged with its name) or from ``files`` (uploaded GGUF blobs; a GGUF of architecture
``clip`` is a projector layer, and ``files`` next to ``from`` may only be projectors, which replace
the model's own); ``adapters`` are appended; then TEMPLATE / SYSTEM / params / messages replace
their layers (params merge over the inherited ones, request winning), LICENSEs accumulate, and the
manifest is written. Everything that can be checked is checked before the first progress object, so
a bad request gets a real HTTP status rather than an error line inside a 200 stream.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from registry.blobs import canonical_digest, digest_of, is_digest
from registry.gguf_info import GGUFInfo
from registry.gguf_kv import GGUF_MAGIC, gguf_info_from_header, scan_facts_header
from registry.manifests import (
    ADAPTER_MEDIA_TYPE, CONFIG_MEDIA_TYPE, LICENSE_MEDIA_TYPE, MESSAGES_MEDIA_TYPE,
    MODEL_MEDIA_TYPE, PARAMS_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE, SYSTEM_MEDIA_TYPE,
    TEMPLATE_MEDIA_TYPES, Descriptor, Manifest, gguf_config,
)
from registry.quantize import check_source, quantize_progress, quantize_target
from registry.create_base import Puller, pull_missing_base
from registry.store import ModelStore
from services.atomic_files import TEMP_PREFIX, file_sha256
from services.errors import InvalidRequestError, ModelNotFoundError
from services.names import parse_name
from services.gocodec import encode_json, whole_numbers_as_ints
from services.options_table import IGNORED, coerce_api_option

TEMPLATE_MEDIA_TYPE = TEMPLATE_MEDIA_TYPES[0]
_CARRIED_CONFIG = ("renderer", "parser", "requires")  # kept from the base model's config

log = structlog.get_logger()


@dataclass(frozen=True)
class CreateRequest:
    """The JSON create form, as the registry receives it."""

    name: str
    from_: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    adapters: Mapping[str, str] = field(default_factory=dict)
    template: str = ""
    system: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    quantize: str = ""
    renderer: str | None = None  # None keeps the base model's, "" clears it
    parser: str | None = None


@dataclass(frozen=True)
class _Layer:
    descriptor: Descriptor
    status: str


@dataclass
class _Plan:
    """What validation produced: base layers, GGUF facts and the base config's extras."""

    layers: list[_Layer]
    facts: dict[str, GGUFInfo]
    parsed_files: int = 0
    config_extras: dict[str, Any] = field(default_factory=dict)

    @property
    def model_layer(self) -> _Layer | None:
        return next((layer for layer in self.layers if layer.descriptor.media_type == MODEL_MEDIA_TYPE), None)


class ModelCreator:
    """Builds models in a ``ModelStore``; ``create`` yields Ollama's progress objects.

    ``pull(name)`` (the registry's pull: progress messages) fetches a ``from`` model that is
    not local first, as Ollama's ``parseFromModel`` does, its progress inside the create stream.
    """

    def __init__(self, store: ModelStore, pull: Puller | None = None) -> None:
        self._store = store
        self._blobs = store.blobs
        self._pull = pull

    async def create(self, request: CreateRequest) -> AsyncIterator[dict[str, Any]]:
        """Validate, then build and save the model, yielding ``{"status", ...}`` objects.

        Raises (before any progress) ``InvalidModelNameError``, ``InvalidRequestError`` with
        Ollama's wording, or ``ModelNotFoundError`` for a ``from`` model that is not local.
        """
        name = parse_name(request.name)
        for files in (request.files, request.adapters):
            await self._check_files(files)
        if self._pull is not None:
            async for progress in pull_missing_base(self._store, self._pull, request.from_):
                yield progress
        plan = await self._base(request)
        if request.adapters:
            plan.layers += await self._adapter_layers(request.adapters)
        parameters = typed_parameters(request.parameters)
        check_template(request.template)
        quantize = self._quantize_plan(request, plan)

        for _ in range(plan.parsed_files):
            yield {"status": "parsing GGUF"}
        if quantize:
            async for progress in self._quantize(plan, *quantize):
                yield progress
        layers = await self._overrides(plan.layers, request, parameters)
        config = await self._config(plan, request)
        for layer in layers:
            yield {"status": layer.status}
        yield {"status": "writing manifest"}
        manifest = Manifest(config=config, layers=tuple(layer.descriptor for layer in layers))
        record, pruned = await self._store.replace_model(name, manifest.to_bytes(), plan.facts)
        log.info("model_created", model=record.name.display, digest=record.digest,
                 layers=len(layers), pruned=len(pruned))
        yield {"status": "success"}

    # -- validation ------------------------------------------------------------------------

    async def _check_files(self, files: Mapping[str, str]) -> None:
        for filename, digest in files.items():
            if not valid_relative_path(filename):
                raise InvalidRequestError("file path must be relative")
            try:
                canonical_digest(digest)
            except InvalidRequestError:
                raise InvalidRequestError("invalid digest format") from None
            if await self._blobs.size(digest) is None:
                raise InvalidRequestError(f'blob "{canonical_digest(digest)}" not found')

    async def _base(self, request: CreateRequest) -> _Plan:
        if is_digest(request.from_):  # FROM sha256:<hex>: an uploaded GGUF, not a model name
            files = {"model.gguf": request.from_}
            await self._check_files(files)
            return await self._from_files(files)
        if request.from_:
            plan = await self._from_model(request.from_)
            if request.files:  # FROM model + FROM ./mmproj.gguf: the model gains a projector
                projectors = await self._projector_layers(request.files)
                plan.layers = _without(plan.layers, PROJECTOR_MEDIA_TYPE) + projectors
            return plan
        if request.files:
            return await self._from_files(request.files)
        raise InvalidRequestError("neither 'from' or 'files' was specified")

    async def _from_model(self, text: str) -> _Plan:
        """Every layer of the local model ``text``, tagged ``from`` its display name."""
        try:
            source = await self._store.resolve(text)
        except ModelNotFoundError:
            raise ModelNotFoundError(f"model '{text}' not found") from None
        assert source.manifest is not None
        origin = source.record.name.display
        layers = [_Layer(replace(d, from_=origin), f"using existing layer {d.digest}")
                  for d in source.manifest.layers]
        facts = {}
        if (model := source.manifest.layer(MODEL_MEDIA_TYPE)) is not None:
            facts[model.digest] = await self._store.gguf_info(model.digest)
        config = await self._json_blob(source.manifest.config.digest)
        extras = {k: config[k] for k in _CARRIED_CONFIG if config.get(k)}
        return _Plan(layers=layers, facts=facts, config_extras=extras)

    async def _from_files(self, files: Mapping[str, str]) -> _Plan:
        """GGUF blobs uploaded beforehand; each becomes a model, adapter or projector layer."""
        if any(name.endswith(".safetensors") for name in files):
            raise InvalidRequestError("safetensors import is not supported; convert the model "
                                      "to GGUF (llama.cpp's convert_hf_to_gguf.py) first")
        plan = _Plan(layers=[], facts={})
        for filename, digest in files.items():
            digest = canonical_digest(digest)
            if not filename.endswith(".gguf") and not await self._has_gguf_magic(digest):
                raise InvalidRequestError("unknown type")
            info, kind = await self._read_gguf(digest)
            media_type = {"adapter": ADAPTER_MEDIA_TYPE,
                          "projector": PROJECTOR_MEDIA_TYPE}.get(kind, MODEL_MEDIA_TYPE)
            size = await self._blobs.size(digest) or 0
            plan.layers.append(_Layer(Descriptor(media_type, digest, size),
                                      f"using existing layer {digest}"))
            if media_type == MODEL_MEDIA_TYPE:
                plan.facts[digest] = info
            plan.parsed_files += 1
        models = [layer for layer in plan.layers if layer.descriptor.media_type == MODEL_MEDIA_TYPE]
        if len(models) != 1:
            raise InvalidRequestError("exactly one GGUF model file is required in 'files'"
                                      if not models else "only one GGUF model file is supported")
        return plan

    async def _projector_layers(self, files: Mapping[str, str]) -> list[_Layer]:
        """Projector files added to an existing model; they replace its own projectors."""
        layers = []
        for digest in files.values():
            digest = canonical_digest(digest)
            if (await self._read_gguf(digest))[1] != "projector":
                raise InvalidRequestError("only a projector file (GGUF architecture 'clip') "
                                          "can be added to an existing model")
            size = await self._blobs.size(digest) or 0
            layers.append(_Layer(Descriptor(PROJECTOR_MEDIA_TYPE, digest, size),
                                 f"using existing layer {digest}"))
        return layers

    async def _adapter_layers(self, adapters: Mapping[str, str]) -> list[_Layer]:
        if len(adapters) > 1:
            raise InvalidRequestError("only one adapter is currently supported")
        ((filename, digest),) = adapters.items()
        digest = canonical_digest(digest)
        if filename.endswith(".safetensors"):
            raise InvalidRequestError("safetensors adapters are not supported; convert to GGUF")
        await self._read_gguf(digest)
        size = await self._blobs.size(digest) or 0
        return [_Layer(Descriptor(ADAPTER_MEDIA_TYPE, digest, size),
                       f"using existing layer {digest}")]

    async def _read_gguf(self, digest: str) -> tuple[GGUFInfo, str]:
        """The blob's GGUF facts and kind (``model``, ``adapter`` or ``projector``)."""
        return await _read_gguf(self._blobs.path(digest))

    async def _has_gguf_magic(self, digest: str) -> bool:
        def read_magic() -> bytes:
            with open(self._blobs.path(digest), "rb") as f:
                return f.read(len(GGUF_MAGIC))
        return await asyncio.to_thread(read_magic) == GGUF_MAGIC

    def _quantize_plan(self, request: CreateRequest, plan: _Plan) -> tuple[str, str] | None:
        """``(target, source type)`` when the model layer must be quantized, else None."""
        if not request.quantize:
            return None
        target = quantize_target(request.quantize)
        model = plan.model_layer
        if model is None:
            return None
        source_type = plan.facts[model.descriptor.digest].quantization
        check_source(source_type)
        return (target, source_type) if source_type != target else None

    # -- building ---------------------------------------------------------------------------

    async def _quantize(self, plan: _Plan, target: str, source_type: str
                        ) -> AsyncIterator[dict[str, Any]]:
        """Replace the model layer with its quantized form, yielding progress."""
        model = plan.model_layer
        assert model is not None
        source = self._blobs.path(model.descriptor.digest)
        output = self._blobs.root / f"{TEMP_PREFIX}quantize-{secrets.token_hex(8)}"
        try:
            async for progress in quantize_progress(source, output, target, source_type,
                                                    model.descriptor.size):
                yield progress
            yield {"status": "verifying conversion"}
            info, _kind = await _read_gguf(output)
            digest, _ = await asyncio.to_thread(file_sha256, output)
            existed = await self._blobs.size(digest) is not None
            size = await self._blobs.adopt_file(output, digest)
        finally:
            await asyncio.to_thread(output.unlink, missing_ok=True)
        layer = _Layer(Descriptor(MODEL_MEDIA_TYPE, digest, size), _new_status(digest, existed))
        plan.layers = [layer if old is model else old for old in plan.layers]
        plan.facts = {digest: info}

    async def _overrides(self, layers: list[_Layer], request: CreateRequest,
                         parameters: dict[str, Any]) -> list[_Layer]:
        """Ollama's setTemplate/setSystem/setLicense/setParameters/setMessages, in order."""
        if request.template:
            layers = _without(layers, *TEMPLATE_MEDIA_TYPES)
            layers.append(await self._text_layer(request.template.encode(), TEMPLATE_MEDIA_TYPE))
        if request.system:
            layers = _without(layers, SYSTEM_MEDIA_TYPE)
            layers.append(await self._text_layer(request.system.encode(), SYSTEM_MEDIA_TYPE))
        for text in request.licenses:
            layers.append(await self._text_layer(text.encode(), LICENSE_MEDIA_TYPE))
        if parameters:
            merged = {**await self._inherited_parameters(layers), **parameters}
            layers = _without(layers, PARAMS_MEDIA_TYPE)
            layers.append(await self._text_layer(encode_json(merged, sort_keys=True, newline=True),
                                                 PARAMS_MEDIA_TYPE))
        if request.messages:
            messages = [{"role": m["role"], "content": m["content"]} for m in request.messages]
            layers = _without(layers, MESSAGES_MEDIA_TYPE)
            layers.append(await self._text_layer(encode_json(messages, newline=True),
                                                 MESSAGES_MEDIA_TYPE))
        return layers

    async def _inherited_parameters(self, layers: list[_Layer]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for layer in layers:
            if layer.descriptor.media_type == PARAMS_MEDIA_TYPE:
                merged.update(await self._json_blob(layer.descriptor.digest))
        return merged

    async def _text_layer(self, data: bytes, media_type: str) -> _Layer:
        existed = await self._blobs.size(digest_of(data)) is not None
        digest, size = await self._blobs.write_bytes(data)
        return _Layer(Descriptor(media_type, digest, size), _new_status(digest, existed))

    async def _config(self, plan: _Plan, request: CreateRequest) -> Descriptor:
        model = plan.model_layer
        if model is None:
            raise InvalidRequestError("the model has no GGUF weights layer")
        config = json.loads(gguf_config(plan.facts[model.descriptor.digest]))
        tail = {k: config.pop(k) for k in ("architecture", "os")}
        extras = dict(plan.config_extras)
        for key in ("renderer", "parser"):  # the request's name wins; "" removes the base's
            value = getattr(request, key)
            if value is not None:
                extras[key] = value
        extras = {k: extras[k] for k in _CARRIED_CONFIG if extras.get(k)}  # Go's field order
        data = encode_json({**config, **extras, **tail}, newline=True)
        digest, size = await self._blobs.write_bytes(data)
        return Descriptor(CONFIG_MEDIA_TYPE, digest, size)

    async def _json_blob(self, digest: str) -> dict[str, Any]:
        try:
            value = json.loads(await self._blobs.read(digest))
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}


def valid_relative_path(name: str) -> bool:
    """Go's ``fs.ValidPath``: unrooted, slash-separated, no empty, ``.`` or ``..`` element."""
    if name == ".":
        return True
    return bool(name) and all(part not in ("", ".", "..") for part in name.split("/"))


def typed_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Known options typed as ``Options.FromMap`` would (wrong types are the request's 400);
    unknown names kept as sent, as Ollama stores them; whole floats become ints (Go's JSON)."""
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        coerced = coerce_api_option(name, value)
        typed[name] = whole_numbers_as_ints(value if coerced is IGNORED else coerced)
    return typed


def check_template(template: str) -> None:
    """The one Go-template syntax error we can spot without a parser: an unclosed action."""
    position = 0
    while (start := template.find("{{", position)) >= 0:
        end = template.find("}}", start + 2)
        if end < 0:
            line = template.count("\n", 0, start) + 1
            raise InvalidRequestError(f"template error: template: :{line}: unclosed action")
        position = end + 2


def _without(layers: list[_Layer], *media_types: str) -> list[_Layer]:
    return [layer for layer in layers if layer.descriptor.media_type not in media_types]


def _new_status(digest: str, existed: bool) -> str:
    return f"using existing layer {digest}" if existed else f"creating new layer {digest}"


async def _read_gguf(path: Path) -> tuple[GGUFInfo, str]:
    """A GGUF file's facts and kind (``model``, ``adapter`` or ``projector``)."""
    try:
        header = await asyncio.to_thread(scan_facts_header, path)
    except (ValueError, OSError):
        raise InvalidRequestError("supplied file was not in GGUF format") from None
    kind = str(header.kv.get("general.type", "model"))
    if kind == "mmproj" or header.kv.get("general.architecture") == "clip":
        kind = "projector"
    return await asyncio.to_thread(gguf_info_from_header, path, header), kind
