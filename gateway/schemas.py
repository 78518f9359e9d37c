"""Request bodies: reading one through the validation layer, and the typed request records.

``read_json`` is the only way a handler gets a JSON body: size limit (``gateway.limits``), strict
JSON and every field's type and range (``gateway.validation`` with ``gateway.request_specs``),
all before the handler sees it, in Go's wording (``json: cannot unmarshal number into Go struct
field GenerateRequest.prompt of type string``). The records below then only pick fields out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.inference_fields import (parse_format, parse_images, parse_message, parse_think,
                                     parse_tools)
from gateway.limits import read_body
from gateway.options import parse_keep_alive
from gateway.prompt import Message, Think
from gateway.request_specs import SPECS
from gateway.validation import check_body, decode_strict
from services.errors import InvalidRequestError
from services.gocodec import typed_field
from services.json_types import JSONObject

OFF_LOOP_BYTES = 256 * 1024  # bigger bodies are decoded and checked in a worker thread


async def read_json(request: web.Request, struct: str, *, package: str = "api",
                    parse: Callable[[JSONObject], Any] | None = None) -> Any:
    """The body as a JSON object of Go type ``<package>.<struct>``, through the validation layer
    (size limit, strict JSON, every field's type and range: ``gateway.validation``); with
    ``parse``, what ``parse(body)`` returns. A large body is decoded, checked and parsed off the
    event loop, so one huge request does not stall every other client."""
    raw = await read_body(request)
    job = functools.partial(decode_request, raw, f"{package}.{struct}", parse)
    if len(raw) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(job)
    return job()


def decode_request(raw: bytes, type_name: str,
                   parse: Callable[[JSONObject], Any] | None = None) -> Any:
    """``raw`` decoded strictly and checked against the spec of ``type_name``."""
    package = type_name.partition(".")[0]
    body = check_body(decode_strict(raw), SPECS[type_name], package)
    return parse(body) if parse is not None else body


def model_name(body: JSONObject, struct: str) -> str:
    """``model`` without surrounding whitespace."""
    model: str = typed_field(body, struct, "model", "string", default="")
    return model.strip()


def model_or_name(body: JSONObject, struct: str) -> str:
    """``model``, or Ollama's deprecated alias ``name`` when ``model`` is empty."""
    model: str = typed_field(body, struct, "model", "string", default="")
    if model:
        return model
    alias: str = typed_field(body, struct, "name", "string", default="")
    return alias


def required_model(body: JSONObject, struct: str) -> str:
    """``model_or_name``; 400 ``model is required`` when both are empty."""
    name = model_or_name(body, struct)
    if not name:
        raise InvalidRequestError("model is required")
    return name


@dataclass(frozen=True)
class InferenceParams:
    """The fields generate and chat share (``_common`` parses them)."""

    model: str
    stream: bool = True
    format: str = ""  # JSON Schema text the output must match ("" for none)
    options: JSONObject = field(default_factory=dict)
    keep_alive: float | None = None
    think: Think = Think()
    truncate: bool = True
    debug_render_only: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True

    @property
    def is_load(self) -> bool:
        """No prompt: the request only loads the model (or, with ``keep_alive`` 0, unloads it)."""
        raise NotImplementedError

    @property
    def is_unload(self) -> bool:
        return self.is_load and self.keep_alive == 0


@dataclass(frozen=True)
class GenerateParams(InferenceParams):
    """``POST /api/generate`` (``api.GenerateRequest``), the fields Corral acts on."""

    prompt: str = ""
    suffix: str = ""
    system: str = ""
    template: str = ""
    context: list[int] = field(default_factory=list)
    raw: bool = False
    images: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, body: JSONObject) -> GenerateParams:
        s = "GenerateRequest"
        context = typed_field(body, s, "context", "array", "[]int", [])
        fields = _common(body, s)
        return cls(prompt=typed_field(body, s, "prompt", "string", default=""),
                   suffix=typed_field(body, s, "suffix", "string", default=""),
                   system=typed_field(body, s, "system", "string", default=""),
                   template=typed_field(body, s, "template", "string", default=""),
                   context=list(context),
                   raw=typed_field(body, s, "raw", "bool", default=False),
                   images=parse_images(body.get("images"), f"{s}.images"), **fields)

    @property
    def is_load(self) -> bool:
        return not self.prompt


@dataclass(frozen=True)
class ChatParams(InferenceParams):
    """``POST /api/chat`` (``api.ChatRequest``), the fields Corral acts on."""

    messages: list[Message] = field(default_factory=list)
    tools: list[JSONObject] = field(default_factory=list)

    @classmethod
    def parse(cls, body: JSONObject) -> ChatParams:
        s = "ChatRequest"
        messages = typed_field(body, s, "messages", "array", "[]api.Message", [])
        return cls(messages=[parse_message(m) for m in messages],
                   tools=parse_tools(body.get("tools")), **_common(body, s))

    @property
    def is_load(self) -> bool:
        return not self.messages


def _common(body: JSONObject, s: str) -> dict[str, Any]:
    """The fields generate and chat share, checked in Ollama's order."""
    fields = dict(model=model_name(body, s),
                  stream=typed_field(body, s, "stream", "bool", default=True),
                  options=typed_field(body, s, "options", "object", default={}),
                  truncate=typed_field(body, s, "truncate", "bool", default=True),
                  debug_render_only=typed_field(body, s, "_debug_render_only", "bool",
                                                default=False))
    fields["shift"] = typed_field(body, s, "shift", "bool", default=True)
    fields["logprobs"] = typed_field(body, s, "logprobs", "bool", default=False)
    top_logprobs = fields["top_logprobs"] = typed_field(body, s, "top_logprobs", "int", default=0)
    fields["think"] = parse_think(body.get("think"))
    fields["keep_alive"] = parse_keep_alive(body.get("keep_alive"))
    if not 0 <= top_logprobs <= 20:
        raise InvalidRequestError("top_logprobs must be between 0 and 20")
    fields["format"] = parse_format(body.get("format"))
    return fields
