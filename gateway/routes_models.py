"""Model management over HTTP: ``/api/show``, ``/api/create``, ``/api/copy``, ``/api/delete``
and ``/api/blobs/:digest``. The registry does the work; these handlers only translate.

Wording per endpoint follows Ollama (``ollama-api.md`` §1.6–1.11, §1.15): show and delete say
``model is required`` for an empty name; copy and delete quote bad names Go-style; blob routes
answer ``invalid digest format``. A blob upload streams the request body to the registry in
1 MiB chunks — a multi-GB GGUF is never held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import re
import types
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web
from google.protobuf.json_format import MessageToDict

from gateway.formats.chat_format import HARMONY_FAMILIES
from gateway.formats.registry import PARSERS, check_names
from gateway.gotemplate import Template, TemplateError
from gateway.keys import REGISTRY
from gateway.listings import details_dict
from gateway.prompt import PromptTemplate
from gateway.routes_transfer import progress_dict
from gateway.schemas import OFF_LOOP_BYTES, model_or_name, read_json, required_model
from gateway.streaming import local_timestamp, ndjson_stream
from services.errors import CorralError, InvalidRequestError
from services.gocodec import (encode_json, parameters_text, typed_field, unmarshal_error,
                             whole_numbers_as_ints)
from services.json_types import JSONObject
from services.modelfile import DEFAULT_TEMPLATE, show_modelfile
from services.pb.corral.registry.v1 import registry_pb2 as pb

UPLOAD_CHUNK = 1 << 20  # well under gRPC's 4 MiB message limit
_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_PLAIN_JSON = {"Content-Type": "application/json"}


# -- show -------------------------------------------------------------------------------------

async def show(request: web.Request) -> web.Response:
    s = "ShowRequest"
    body = await read_json(request, s)
    name = required_model(body, s)
    system = typed_field(body, s, "system", "string", default="")
    options = typed_field(body, s, "options", "object", default={})
    typed_field(body, s, "verbose", "bool", default=False)
    reply = await request.app[REGISTRY].show(name)
    build = functools.partial(show_payload, reply, system=system, options=options)
    # A model with megabytes of template or system prompt: quoting it is worth a thread.
    return _json(await asyncio.to_thread(build) if reply.ByteSize() > OFF_LOOP_BYTES else build())


def show_payload(reply: pb.ShowModelResponse, *, system: str = "",
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``api.ShowResponse`` in Ollama's field order, empty ``omitempty`` fields left out.

    ``system`` (the request's) replaces the model's SYSTEM everywhere; ``options`` are merged
    into the Modelfile's PARAMETER lines only, as Ollama does. A model without a TEMPLATE
    shows the GGUF chat template Corral renders (and no TEMPLATE line, so re-creating from the
    Modelfile keeps using it); a model with neither shows Ollama's default ``{{ .Prompt }}``.
    """
    parameters = whole_numbers_as_ints(MessageToDict(reply.parameters))
    system = system or reply.system
    if reply.template:
        template, modelfile_template = reply.template, reply.template
    elif reply.chat_template:
        template, modelfile_template = reply.chat_template, None
    else:
        template = modelfile_template = DEFAULT_TEMPLATE
    modelfile = show_modelfile(
        display_name=reply.model.name, model_path=reply.model_path, template=modelfile_template,
        system=system, adapters=list(reply.adapter_paths),
        projectors=list(reply.projector_paths),
        parameters={**parameters, **(options or {})}, licenses=list(reply.license),
        messages=[(m.role, m.content) for m in reply.messages],
        renderer=reply.renderer, parser=reply.parser)
    out: dict[str, Any] = {}
    if reply.license:
        out["license"] = "\n".join(reply.license)
    out["modelfile"] = modelfile
    if parameters:
        out["parameters"] = parameters_text(parameters)
    out["template"] = template
    if system:
        out["system"] = system
    out.update({k: v for k, v in (("renderer", reply.renderer), ("parser", reply.parser)) if v})
    out["details"] = details_dict(reply.model.details)
    if reply.messages:
        out["messages"] = [{"role": m.role, "content": m.content} for m in reply.messages]
    out["model_info"] = whole_numbers_as_ints(MessageToDict(reply.model_info))
    if reply.HasField("projector_info"):
        out["projector_info"] = whole_numbers_as_ints(MessageToDict(reply.projector_info))
    if capabilities := show_capabilities(reply):
        out["capabilities"] = capabilities
    out["modified_at"] = local_timestamp(reply.model.modified_at.ToDatetime(tzinfo=dt.timezone.utc))
    return out


def show_capabilities(reply: pb.ShowModelResponse) -> list[str]:
    """The registry's (from the weights) plus the template's, decided by the same
    ``PromptTemplate`` that generate and chat check requests against, plus what the named
    parser finds (tools, thinking) and ``thinking`` for gpt-oss, as Ollama adds them."""
    try:
        template = PromptTemplate.for_model(types.SimpleNamespace(
            template=reply.template, chat_template=reply.chat_template, bos_token="",
            eos_token=""))
        found = [*reply.capabilities, *template.capabilities]
    except CorralError:  # a stored template that no longer parses: it offers nothing
        found = list(reply.capabilities)
    spec = PARSERS.get(reply.parser)
    extra = ["tools"] * bool(spec and spec.tools) + ["thinking"] * bool(
        (spec and spec.thinking) or reply.model.details.family in HARMONY_FAMILIES)
    return found + [c for c in extra if c not in found]


# -- create -----------------------------------------------------------------------------------

async def create(request: web.Request) -> web.StreamResponse:
    create_request, stream = await read_json(request, "CreateRequest", parse=_checked_create)
    objects = _progress(request.app[REGISTRY].create(create_request))
    if stream:
        return await ndjson_stream(request, objects)
    async with contextlib.aclosing(objects):
        last = {"status": "success"}
        async for last in objects:
            pass
    return _json(last, plain=True)


def parse_create(body: JSONObject) -> tuple[pb.CreateModelRequest, bool]:
    """``api.CreateRequest`` (with its deprecated aliases) as the registry's request."""
    s = "CreateRequest"
    files = _string_map(body, s, "files")
    adapters = _string_map(body, s, "adapters")
    parameters = typed_field(body, s, "parameters", "object", default={})
    messages = [_message(m) for m in typed_field(body, s, "messages", "array", "[]api.Message", [])]
    request = pb.CreateModelRequest(
        name=model_or_name(body, s),
        files=files, adapters=adapters,
        template=typed_field(body, s, "template", "string", default=""),
        system=typed_field(body, s, "system", "string", default=""), messages=messages,
        license=_licenses(body.get("license")),
        quantize=(typed_field(body, s, "quantize", "string", default="")
                  or typed_field(body, s, "quantization", "string", default="")),
        **{"from": typed_field(body, s, "from", "string", default="")})
    for key in ("renderer", "parser"):
        if (value := typed_field(body, s, key, "string")) is not None:
            setattr(request, key, value.strip())
    check_names(request.renderer, request.parser)
    if parameters:
        request.parameters.update(parameters)
    return request, typed_field(body, s, "stream", "bool", default=True)


def _checked_create(body: JSONObject) -> tuple[pb.CreateModelRequest, bool]:
    """``parse_create`` and the template check (off the event loop for a big body)."""
    create_request, stream = parse_create(body)
    check_template(create_request.template)
    return create_request, stream


def check_template(source: str) -> None:
    """Parse a TEMPLATE as Ollama does before storing it: 400 ``template error: ...``."""
    if not source:
        return
    try:
        Template(source)
    except TemplateError as exc:
        raise InvalidRequestError(f"template error: {exc.message}") from None


def _string_map(body: JSONObject, struct: str, name: str) -> dict[str, str]:
    value: JSONObject = typed_field(body, struct, name, "object", "map[string]string", {})
    strings: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise unmarshal_error(item, f"{struct}.{name}", "string")
        strings[key] = item
    return strings


def _licenses(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidRequestError("license must be a string or a list of strings")


def _message(raw: Any) -> pb.Message:
    s = "CreateRequest.messages"
    if not isinstance(raw, dict):
        raise unmarshal_error(raw, s, "api.Message")
    return pb.Message(role=typed_field(raw, s, "role", "string", default=""),
                      content=typed_field(raw, s, "content", "string", default=""))


async def _progress(progress: AsyncGenerator[pb.Progress, None]
                    ) -> AsyncGenerator[JSONObject, None]:
    async with contextlib.aclosing(progress):
        async for item in progress:
            yield progress_dict(item)


# -- copy and delete --------------------------------------------------------------------------

async def copy(request: web.Request) -> web.Response:
    s = "CopyRequest"
    body = await read_json(request, s)
    await request.app[REGISTRY].copy(typed_field(body, s, "source", "string", default=""),
                                     typed_field(body, s, "destination", "string", default=""))
    return web.Response(status=200)


async def delete(request: web.Request) -> web.Response:
    s = "DeleteRequest"
    name = required_model(await read_json(request, s), s)
    await request.app[REGISTRY].delete(name)
    return web.Response(status=200)


# -- blobs ------------------------------------------------------------------------------------

def _digest(request: web.Request) -> str:
    """The path's digest as ``sha256:<hex>``; 400 ``invalid digest format`` otherwise."""
    match = _DIGEST.fullmatch(request.match_info["digest"])
    if match is None:
        raise InvalidRequestError("invalid digest format")
    return f"sha256:{match.group(1).lower()}"


async def head_blob(request: web.Request) -> web.Response:
    stat = await request.app[REGISTRY].stat_blob(_digest(request))
    return web.Response(status=200 if stat.exists else 404)


async def upload_blob(request: web.Request) -> web.Response:
    """201 when stored now, 200 when already present (body not read), 400 on a mismatch."""
    digest = _digest(request)
    registry = request.app[REGISTRY]
    if (await registry.stat_blob(digest)).exists:
        return web.Response(status=200)
    reply = await registry.put_blob(digest, request.content.iter_chunked(UPLOAD_CHUNK))
    return web.Response(status=201 if reply.created else 200)


def _json(obj: object, *, plain: bool = False) -> web.Response:
    headers = _PLAIN_JSON if plain else {"Content-Type": "application/json; charset=utf-8"}
    return web.Response(body=encode_json(obj), headers=headers)


def add_model_routes(app: web.Application) -> None:
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/create", create)
    app.router.add_post("/api/copy", copy)
    app.router.add_delete("/api/delete", delete)
    app.router.add_route("HEAD", "/api/blobs/{digest}", head_blob)
    app.router.add_post("/api/blobs/{digest}", upload_blob)
