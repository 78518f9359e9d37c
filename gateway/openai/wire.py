"""OpenAI wire helpers: JSON replies, the error shape, SSE, shared sampling options.

Ollama writes OpenAI bodies with Go's ``json.Encoder`` (a trailing newline, ``Content-Type:
application/json``) and binds requests with Go's decoder, so type errors read
``json: cannot unmarshal string into Go struct field ChatCompletionRequest.temperature of type
float64`` (``services.gocodec.typed_field``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from aiohttp import web

from gateway.middleware import dialect_error_middleware
from gateway.schemas import read_json
from gateway.streaming import stream_reply
from services.errors import CorralError, InvalidRequestError
from services.gocodec import encode_json, go_type_name, typed_field
from services.json_types import JSONObject

JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream"
FINGERPRINT = "fp_ollama"
_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}
_Parsed = TypeVar("_Parsed")

@dataclass(frozen=True)
class TranslatedRequest:
    """A translated request: the native body plus what shapes the reply."""

    native: JSONObject
    stream: bool = False
    include_usage: bool = False


# -- replies --------------------------------------------------------------------------------------

def openai_json(obj: object, status: int = 200) -> web.Response:
    """A ``json.Encoder`` reply: compact JSON plus ``\\n``, ``application/json``."""
    return web.Response(body=encode_json(obj) + b"\n", status=status,
                        headers={"Content-Type": JSON_CONTENT_TYPE})


def error_body(status: int, message: str) -> JSONObject:
    """OpenAI's error object; the type follows the status (Ollama ``openai.NewError``)."""
    return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "api_error"),
                      "param": None, "code": None}}


def _error_reply(_request: web.Request, error: CorralError, _crashed: bool) -> web.Response:
    return openai_json(error_body(error.http_status, error.message), error.http_status)


# The ``/v1`` sub-app's one translator: every failure in OpenAI's error shape, native status.
openai_error_middleware = dialect_error_middleware(_error_reply)


@overload
async def read_body(request: web.Request, struct: str, parse: None = None) -> JSONObject: ...
@overload
async def read_body(request: web.Request, struct: str,
                    parse: Callable[[JSONObject], _Parsed]) -> _Parsed: ...
async def read_body(request: web.Request, struct: str,
                    parse: Callable[[JSONObject], Any] | None = None) -> Any:
    """The JSON body through the validation layer, as Go type ``openai.<struct>`` (and what
    ``parse`` makes of it, computed off the event loop for a large body)."""
    return await read_json(request, struct, package="openai", parse=parse)


async def sse_stream(request: web.Request, events: AsyncGenerator[JSONObject, None], *,
                     named: bool = False) -> web.StreamResponse:
    """Send ``events`` as ``data: <json>\\n\\n`` then ``data: [DONE]``; with ``named`` (the
    Responses API) each gets an ``event: <its type>`` line and there is no ``[DONE]``.

    A failure before the first event is an ordinary error reply (raised to the middleware);
    after it, one ``data: {"error": ...}`` event ends the stream, which the OpenAI clients raise.
    """
    def failed(exc: CorralError) -> bytes:
        error = error_body(exc.http_status, exc.message)
        return _event({"type": "error", **error} if named else error, named)

    return await stream_reply(request, events, {"Content-Type": SSE_CONTENT_TYPE},
                              encode=functools.partial(_event, named=named), error=failed,
                              end=b"" if named else b"data: [DONE]\n\n")


def _event(obj: JSONObject, named: bool = False) -> bytes:
    line = b"data: " + encode_json(obj) + b"\n\n"
    return b"event: " + obj["type"].encode() + b"\n" + line if named else line


# -- request fields -------------------------------------------------------------------------------

def stop_sequences(raw: object, *, strict: bool) -> list[str] | None:
    """``stop`` as a string or a list; ``strict`` (completions) rejects non-string items."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list):
        return None
    bad = [item for item in raw if not isinstance(item, str)]
    if bad and strict:
        raise InvalidRequestError(f"invalid type for 'stop' field: {go_type_name(bad[0])}")
    return [item for item in raw if isinstance(item, str)]


def sampling_options(body: JSONObject, struct: str, *,
                     completions: bool = False) -> JSONObject:
    """Native ``options`` from OpenAI's sampling fields.

    ``temperature`` and ``top_p`` default to 1.0, overriding the model's defaults, as Ollama
    does; the completions endpoint also sends both penalties (0 when absent) and treats a
    ``top_p`` of 0 as absent.
    """
    float_go = "float32" if completions else "float64"
    options: dict[str, Any] = {}
    stop = stop_sequences(body.get("stop"), strict=completions)
    if stop is not None:
        options["stop"] = stop
    max_tokens = typed_field(body, struct, "max_tokens", "int")
    if max_tokens is None and not completions:
        max_tokens = typed_field(body, struct, "max_completion_tokens", "int")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    options["temperature"] = typed_field(body, struct, "temperature", "number", float_go, 1.0)
    seed = typed_field(body, struct, "seed", "int")
    if seed is not None:
        options["seed"] = seed
    for penalty in ("frequency_penalty", "presence_penalty"):
        value = typed_field(body, struct, penalty, "number", float_go, 0.0 if completions else None)
        if value is not None:
            options[penalty] = value
    top_p = typed_field(body, struct, "top_p", "number", float_go)
    options["top_p"] = 1.0 if top_p is None or (completions and top_p == 0) else top_p
    return options


# native option → the OpenAI fields that set it; a field the request sends wins over ``options``
_OPENAI_FIELDS = {"temperature": ("temperature",), "top_p": ("top_p",), "seed": ("seed",),
                  "num_predict": ("max_tokens", "max_completion_tokens"), "stop": ("stop",),
                  "frequency_penalty": ("frequency_penalty",),
                  "presence_penalty": ("presence_penalty",)}


def with_extension_options(body: JSONObject, struct: str,
                           options: JSONObject) -> JSONObject:
    """``options`` plus the request's ``options`` extension: Ollama's runtime options
    (``num_ctx``, ``top_k``, ``repeat_penalty``...) that OpenAI's schema has no field for
    (ollama/ollama#7063, #2722). They are checked like native options; where OpenAI has a field
    for the same option and the request sets it, the field wins."""
    extension = typed_field(body, struct, "options", "object", default={})
    merged = dict(options)
    for key, value in extension.items():
        if not any(body.get(name) is not None for name in _OPENAI_FIELDS.get(key, ())):
            merged[key] = value
    return merged


def refuse_logit_bias(body: JSONObject) -> None:
    """A non-empty ``logit_bias`` is a 400: Ollama ignores it, which silently changes what the
    client asked for."""
    if body.get("logit_bias"):
        raise InvalidRequestError("logit_bias is not supported")


def include_usage(body: JSONObject, struct: str) -> bool:
    """``stream_options.include_usage``."""
    stream_options = typed_field(body, struct, "stream_options", "object",
                                 "*openai.StreamOptions", {})
    return bool(typed_field(stream_options, "StreamOptions", "include_usage", "bool",
                            default=False))


def usage(native: JSONObject) -> JSONObject:
    prompt, completion = native.get("prompt_eval_count", 0), native.get("eval_count", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def openai_logprobs(native: JSONObject) -> JSONObject | None:
    """A choice's ``logprobs`` (``{"content": [...]}``) from a native object's, if it has any."""
    entries = native.get("logprobs")
    if not entries:
        return None
    return {"content": [{**entry, "top_logprobs": entry.get("top_logprobs", [])}
                        for entry in entries]}

