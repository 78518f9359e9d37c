"""Request bodies: JSON decoding with Go-like error messages, and the typed request records.

Ollama binds bodies with Go's encoding/json, so clients see its wording: ``invalid character 'x'
looking for beginning of value`` or ``json: cannot unmarshal number into Go struct field
GenerateRequest.prompt of type string``. Unknown fields are ignored, ``null`` means absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.inference_fields import (parse_format, parse_images, parse_message, parse_think,
                                     parse_tools)
from gateway.options import parse_keep_alive
from gateway.prompt import Think
from services.errors import InvalidRequestError

_JSON_KINDS = ((bool, "bool"), (str, "string"), ((int, float), "number"), (list, "array"),
               (dict, "object"))


def _json_kind(value: object) -> str:
    return next(name for types, name in _JSON_KINDS if isinstance(value, types))


def decode_error(exc: json.JSONDecodeError) -> str:
    """Go's decoder message for the place Python's decoder stopped."""
    if exc.pos >= len(exc.doc.rstrip()):
        return "unexpected EOF"
    char = exc.doc[exc.pos]
    where = {
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Extra data": "after top-level value",
    }.get(exc.msg)
    if exc.msg == "Expecting ',' delimiter":
        where = "after array element" if _innermost_open(exc.doc, exc.pos) == "[" else \
            "after object key:value pair"
    return f"invalid character {char!r} {where or 'looking for beginning of value'}"


def _innermost_open(doc: str, pos: int) -> str:
    depth: list[str] = []
    in_string = escaped = False
    for char in doc[:pos]:
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth.append(char)
        elif char in "]}" and depth:
            depth.pop()
    return depth[-1] if depth else ""


async def read_json(request: web.Request, struct: str) -> dict[str, Any]:
    """The body as a JSON object; 400 ``missing request body`` / decoder errors otherwise."""
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequestError("missing request body")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("invalid character in request body") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(decode_error(exc)) from exc
    if body is None:  # Go decodes `null` into a struct as no fields at all
        return {}
    if not isinstance(body, dict):
        raise InvalidRequestError(
            f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.{struct}")
    return body


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
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
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
        for token in context:
            if not isinstance(token, int) or isinstance(token, bool):
                raise InvalidRequestError(f"json: cannot unmarshal {_json_kind(token)} into Go "
                                          f"struct field {s}.context of type int")
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
