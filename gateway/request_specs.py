"""Every request body the gateway reads, field by field: the table ``gateway.validation`` checks.

Names are Ollama's Go types (``api.GenerateRequest``, ``openai.ChatCompletionRequest``) so errors
read as Ollama's do. Integers carry the width of the C field they reach (token ids and
``max_tokens`` are int32s in llama.cpp and in the runner's proto); every sampling float is a C
``float``. Fields with their own decoders (``think``, ``format``, ``keep_alive``, ``options``,
``images``, embed ``input``) reuse those decoders, so each rule is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.inference_fields import check_base64, embed_inputs, parse_format, parse_think
from gateway.limits import MAX_CHAT_MESSAGES, MAX_EMBED_INPUTS, too_many
from gateway.options import decode_options, parse_keep_alive
from gateway.validation import (ANY, BOOL, FLOAT32, FLOAT64, INT32, STRING, Array, Custom,
                                Integer, Spec, StringMap, Struct, obj)
from services.errors import InvalidRequestError


class _Image(Spec):
    """One base64 image (``api.ImageData``), checked as Go's ``base64.StdEncoding`` would."""

    go = "api.ImageData"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise self.refuse(value, where)
        check_base64(value)


def _embed_input(value: Any) -> None:
    inputs = embed_inputs(value)
    if len(inputs) > MAX_EMBED_INPUTS:
        raise InvalidRequestError(too_many("inputs", len(inputs), MAX_EMBED_INPUTS))


def _item_count(noun: str, limit: int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, list) and len(value) > limit:
            raise InvalidRequestError(too_many(noun, len(value), limit))
    return check


def _licenses(value: Any) -> None:
    if not isinstance(value, str) and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise InvalidRequestError("license must be a string or a list of strings")


def _parameters(value: dict[str, Any]) -> None:
    """Known options typed and in range now, not at the first inference with the model; other
    values kept as sent (Ollama stores them), but only scalars or lists of them."""
    decode_options(value)
    for name, item in value.items():
        items = item if isinstance(item, list) else [item]
        if any(isinstance(v, (dict, list)) for v in items):
            raise InvalidRequestError(f'parameter "{name}" must be a string, number, boolean or '
                                      "a list of them")


IMAGES = Array(_Image(), "[]api.ImageData")
OPTIONS = Custom(decode_options, dict, "map[string]interface {}")
KEEP_ALIVE = Custom(parse_keep_alive)
THINK = Custom(parse_think)
FORMAT = Custom(parse_format)

TOOL_CALL = Struct("api.ToolCall", {
    "id": STRING,
    "function": Struct("api.ToolCallFunction", {
        "index": Integer(), "name": STRING,
        "arguments": obj("api.ToolCallFunctionArguments")}),
})
TOOL = Struct("api.Tool", {
    "type": STRING,
    "function": Struct("api.ToolFunction", {
        "name": STRING, "description": STRING, "parameters": obj("api.ToolFunctionParameters")}),
})
MESSAGE = Struct("api.Message", {
    "role": STRING, "content": STRING, "thinking": STRING, "images": IMAGES,
    "tool_calls": Array(TOOL_CALL, "[]api.ToolCall"), "tool_name": STRING,
    "tool_call_id": STRING,
})

_INFERENCE = {
    "stream": BOOL, "format": FORMAT, "keep_alive": KEEP_ALIVE, "options": OPTIONS,
    "think": THINK, "truncate": BOOL, "shift": BOOL, "logprobs": BOOL,
    "top_logprobs": Integer(), "_debug_render_only": BOOL,
}
_NAMED = {"model": STRING, "name": STRING}

API: dict[str, Struct] = {s.go: s for s in (
    Struct("api.GenerateRequest", {
        "model": STRING, "prompt": STRING, "suffix": STRING, "system": STRING,
        "template": STRING, "context": Array(INT32, "[]int"), "raw": BOOL, "images": IMAGES,
        **_INFERENCE}),
    Struct("api.ChatRequest", {
        "model": STRING,
        "messages": Array(MESSAGE, "[]api.Message", MAX_CHAT_MESSAGES, "messages"),
        "tools": Array(TOOL, "api.Tools"), **_INFERENCE}),
    Struct("api.EmbedRequest", {
        "model": STRING, "input": Custom(_embed_input), "keep_alive": KEEP_ALIVE,
        "truncate": BOOL, "dimensions": Integer(), "options": OPTIONS}),
    Struct("api.EmbeddingRequest", {
        "model": STRING, "prompt": STRING, "keep_alive": KEEP_ALIVE, "options": OPTIONS}),
    Struct("api.CreateRequest", {
        **_NAMED, "from": STRING, "files": StringMap(), "adapters": StringMap(),
        "template": STRING, "system": STRING, "license": Custom(_licenses),
        "parameters": Custom(_parameters, dict, "map[string]interface {}"),
        "messages": Array(Struct("api.Message", {"role": STRING, "content": STRING}),
                          "[]api.Message", MAX_CHAT_MESSAGES, "messages"),
        "quantize": STRING, "quantization": STRING, "stream": BOOL, "renderer": STRING,
        "parser": STRING, "requires": STRING}),
    Struct("api.ShowRequest", {
        **_NAMED, "system": STRING, "template": STRING, "verbose": BOOL,
        "options": obj()}),
    Struct("api.CopyRequest", {"source": STRING, "destination": STRING}),
    Struct("api.DeleteRequest", dict(_NAMED)),
    # Corral's own: POST /api/verify (``corral verify``)
    Struct("api.VerifyRequest", {"model": STRING, "repair": BOOL, "stream": BOOL}),
    # Corral's own: POST /api/keys (``corral keys create`` over the API)
    Struct("api.CreateKeyRequest", {
        "name": STRING, "scopes": Array(STRING, "[]string"), "expires": STRING,
        "requests_per_minute": INT32, "max_concurrent": INT32}),
    Struct("api.PullRequest", {**_NAMED, "insecure": BOOL, "username": STRING,
                               "password": STRING, "stream": BOOL}),
    Struct("api.PushRequest", {**_NAMED, "insecure": BOOL, "username": STRING,
                               "password": STRING, "stream": BOOL}),
)}

_STREAM_OPTIONS = Struct("openai.StreamOptions", {"include_usage": BOOL})
_OPENAI_MESSAGE = Struct("openai.Message", {
    "role": STRING, "name": STRING, "tool_call_id": STRING, "reasoning": STRING,
    "tool_calls": Array(obj("openai.ToolCall"), "[]openai.ToolCall")})

OPENAI: dict[str, Struct] = {s.go: s for s in (
    Struct("openai.ChatCompletionRequest", {
        "model": STRING,
        "messages": Array(_OPENAI_MESSAGE, "[]openai.Message", MAX_CHAT_MESSAGES, "messages"),
        "stream": BOOL, "stream_options": _STREAM_OPTIONS, "max_tokens": INT32,
        "max_completion_tokens": INT32, "seed": Integer(), "temperature": FLOAT64,
        "top_p": FLOAT64, "frequency_penalty": FLOAT64, "presence_penalty": FLOAT64,
        "response_format": obj("openai.ResponseFormat"),
        "tools": Array(obj("api.Tool"), "[]api.Tool"), "reasoning": obj("openai.Reasoning"),
        "reasoning_effort": STRING, "logprobs": BOOL, "top_logprobs": Integer()}),
    Struct("openai.CompletionRequest", {
        "model": STRING, "prompt": STRING, "suffix": STRING, "max_tokens": INT32,
        "temperature": FLOAT32, "top_p": FLOAT32, "frequency_penalty": FLOAT32,
        "presence_penalty": FLOAT32, "seed": Integer(), "stream": BOOL,
        "stream_options": _STREAM_OPTIONS, "logprobs": Integer("*int")}),
    Struct("openai.EmbedRequest", {
        "model": STRING, "input": Custom(_embed_input), "encoding_format": STRING,
        "dimensions": Integer()}),
    Struct("openai.ResponsesRequest", {
        "model": STRING, "input": Custom(_item_count("input items", MAX_CHAT_MESSAGES)),
        "instructions": STRING, "stream": BOOL, "temperature": FLOAT64, "top_p": FLOAT64,
        "max_output_tokens": INT32, "reasoning": obj("openai.Reasoning"),
        "text": obj("openai.ResponsesText"), "tools": Array(ANY, "[]openai.ResponsesTool")}),
)}

_ANTHROPIC_FIELDS = {
    "model": STRING,
    "messages": Array(obj("anthropic.MessageParam"), "[]anthropic.MessageParam",
                      MAX_CHAT_MESSAGES, "messages"),
    "max_tokens": INT32, "stream": BOOL, "temperature": FLOAT64, "top_p": FLOAT64,
    "top_k": INT32, "stop_sequences": Array(STRING, "[]string"),
    "tools": Array(obj("anthropic.Tool"), "[]anthropic.Tool"),
    "tool_choice": obj("anthropic.ToolChoice"), "thinking": obj("anthropic.ThinkingConfig"),
    "metadata": obj("anthropic.Metadata")}
ANTHROPIC: dict[str, Struct] = {s.go: s for s in (
    Struct("anthropic.MessagesRequest", _ANTHROPIC_FIELDS),
    Struct("anthropic.CountTokensRequest", _ANTHROPIC_FIELDS),
)}

SPECS: dict[str, Struct] = {**API, **OPENAI, **ANTHROPIC}
