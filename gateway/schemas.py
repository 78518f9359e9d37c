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
from gateway.prompt import Think
from gateway.request_specs import SPECS
from gateway.validation import check_body, decode_strict
from services.errors import InvalidRequestError
from services.gofmt import json_kind

OFF_LOOP_BYTES = 256 * 1024  # bigger bodies are decoded and checked in a worker thread


async def read_json(request: web.Request, struct: str, *, package: str = "api",
                    parse: Callable[[dict], Any] | None = None) -> Any:
    """The body as a JSON object of Go type ``<package>.<struct>``, through the validation layer
    (size limit, strict JSON, every field's type and range: ``gateway.validation``); with
    ``parse``, what ``parse(body)`` returns. A large body is decoded, checked and parsed off the
    event loop, so one huge request does not stall every other client."""
    raw = await read_body(request)
    job = functools.partial(decode_request, raw, f"{package}.{struct}", parse)
    if len(raw) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(job)
    return job()


def decode_request(raw: bytes, type_name: str, parse: Callable[[dict], Any] | None = None) -> Any:
    """``raw`` decoded strictly and checked against the spec of ``type_name``."""
    package = type_name.partition(".")[0]
    body = check_body(decode_strict(raw), SPECS[type_name], package)
    return parse(body) if parse is not None else body


_GO_TYPES = {str: "string", bool: "bool", list: "[]", dict: "map[string]interface {}"}


def field_of(body: dict, struct: str, name: str, kind: type, default: Any = None,
             go_type: str | None = None) -> Any:
    """``body[name]`` if it has JSON type ``kind``; absent/null gives ``default``."""
    value = body.get(name)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise InvalidRequestError(
            f"json: cannot unmarshal {json_kind(value)} into Go struct field "
            f"{struct}.{name} of type {go_type or _GO_TYPES.get(kind, kind.__name__)}")
    return value


def _model_name(body: dict, struct: str) -> str:
    return field_of(body, struct, "model", str, "").strip()


@dataclass(frozen=True)
class GenerateParams:
    """``POST /api/generate`` (``api.GenerateRequest``), the fields Corral acts on."""

    model: str
    prompt: str = ""
    suffix: str = ""
    system: str = ""
    template: str = ""
    context: list[int] = field(default_factory=list)
    raw: bool = False
    stream: bool = True
    format: str = ""  # JSON Schema text the output must match ("" for none)
    images: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    keep_alive: float | None = None
    think: Think = Think()
    truncate: bool = True
    debug_render_only: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True

    @classmethod
    def parse(cls, body: dict) -> GenerateParams:
        s = "GenerateRequest"
        context = field_of(body, s, "context", list, [], "[]int")
        fields = _common(body, s)
        return cls(prompt=field_of(body, s, "prompt", str, ""),
                   suffix=field_of(body, s, "suffix", str, ""),
                   system=field_of(body, s, "system", str, ""),
                   template=field_of(body, s, "template", str, ""), context=list(context),
                   raw=field_of(body, s, "raw", bool, False),
                   images=parse_images(body.get("images"), f"{s}.images"), **fields)

    @property
    def is_unload(self) -> bool:
        return not self.prompt and self.keep_alive == 0

    @property
    def is_load(self) -> bool:
        return not self.prompt


@dataclass(frozen=True)
class ChatParams:
    """``POST /api/chat`` (``api.ChatRequest``), the fields Corral acts on."""

    model: str
    messages: list[dict] = field(default_factory=list)
    tools: list[dict] = field(default_factory=list)
    stream: bool = True
    format: str = ""
    options: dict = field(default_factory=dict)
    keep_alive: float | None = None
    think: Think = Think()
    truncate: bool = True
    debug_render_only: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True

    @classmethod
    def parse(cls, body: dict) -> ChatParams:
        s = "ChatRequest"
        messages = field_of(body, s, "messages", list, [], "[]api.Message")
        return cls(messages=[parse_message(m) for m in messages],
                   tools=parse_tools(body.get("tools")), **_common(body, s))

    @property
    def is_unload(self) -> bool:
        return not self.messages and self.keep_alive == 0

    @property
    def is_load(self) -> bool:
        return not self.messages


def _common(body: dict, s: str) -> dict[str, Any]:
    """The fields generate and chat share, checked in Ollama's order."""
    fields = dict(model=_model_name(body, s), stream=field_of(body, s, "stream", bool, True),
                  options=field_of(body, s, "options", dict, {}),
                  truncate=field_of(body, s, "truncate", bool, True),
                  debug_render_only=field_of(body, s, "_debug_render_only", bool, False))
    fields["shift"] = field_of(body, s, "shift", bool, True)
    fields["logprobs"] = field_of(body, s, "logprobs", bool, False)
    top_logprobs = fields["top_logprobs"] = field_of(body, s, "top_logprobs", int, 0, "int")
    fields["think"] = parse_think(body.get("think"))
    fields["keep_alive"] = parse_keep_alive(body.get("keep_alive"))
    if not 0 <= top_logprobs <= 20:
        raise InvalidRequestError("top_logprobs must be between 0 and 20")
    fields["format"] = parse_format(body.get("format"))
    return fields
