"""The request-validation layer: strict JSON, field specs, body limits (through the real app)."""

from __future__ import annotations

import json
import threading

import pytest

from gateway import limits, schemas
from gateway.request_specs import SPECS
from gateway.schemas import decode_request
from gateway.validation import MAX_DEPTH, decode_strict
from services.errors import InvalidRequestError

MODEL = "smollm2:135m"


def refused(raw: bytes, type_name: str = "api.GenerateRequest") -> str:
    with pytest.raises(InvalidRequestError) as info:
        decode_request(raw, type_name)
    return info.value.message


# -- strict JSON --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,message", [
    (b"", "missing request body"),
    (b"  \n", "missing request body"),
    (b"[]", "json: cannot unmarshal array into Go value of type api.GenerateRequest"),
    (b'"x"', "json: cannot unmarshal string into Go value of type api.GenerateRequest"),
    (b'{"options":{"temperature":NaN}}', "invalid character 'N' looking for beginning of value"),
    (b'{"options":{"temperature":Infinity}}',
     "invalid character 'I' looking for beginning of value"),
    (b'{"options":{"temperature":-Infinity}}', "invalid character 'I' in numeric literal"),
    (b'{"options":{"temperature":1e999}}',
     "json: cannot unmarshal number 1e999 into Go value of type float64"),
    (b'{"x":' + b"1" * 5000 + b"}", "json: number out of range"),
    (b'{"prompt":"\xff"}', "invalid UTF-8 in request body at byte 11"),
    (b'{"prompt":"\\ud800"}', "invalid string: \\ud800 is a lone UTF-16 surrogate, not a character"),
    (b'{"\\udc00":1}', "invalid string: \\udc00 is a lone UTF-16 surrogate, not a character"),
    (b"{", "unexpected EOF"),
    (b"{} x", "invalid character 'x' after top-level value"),
    # Go's quoteChar, not Python's repr: a single quote is '\'', a non-ASCII character is named
    # by its first UTF-8 byte
    (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
    ('{"a":1,é}'.encode(), "invalid character 'Ã' looking for beginning of object key string"),
])
def test_strict_json(raw, message):
    assert refused(raw) == message


def test_a_null_body_reads_as_no_fields():
    """Go decodes ``null`` into a struct as a no-op: the request then fails as ``{}`` would."""
    assert decode_request(b"null", "api.GenerateRequest") == {}


def test_a_surrogate_pair_is_a_character():
    assert decode_strict(b'{"prompt":"\\ud83d\\ude00"}') == {"prompt": "\U0001F600"}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 200_000])
def test_nesting_is_limited(depth):
    raw = b'{"format":' + b"[" * depth + b"]" * depth + b"}"
    assert refused(raw) == "exceeded max depth: JSON may nest at most 100 levels"


def test_nesting_up_to_the_limit_is_fine():
    depth = MAX_DEPTH - 1
    schema = b"[" * depth + b"]" * depth
    assert decode_strict(b'{"x":' + schema + b"}")["x"] is not None


# -- field specs --------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name,body,message", [
    ("api.GenerateRequest", {"prompt": 1},
     "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string"),
    ("api.GenerateRequest", {"context": [2**31]},
     "json: cannot unmarshal number 2147483648 into Go struct field GenerateRequest.context of "
     "type int32"),
    ("api.GenerateRequest", {"context": [1.5]},
     "json: cannot unmarshal number 1.5 into Go struct field GenerateRequest.context of type int"),
    ("api.GenerateRequest", {"context": [None]},
     "json: cannot unmarshal null into Go struct field GenerateRequest.context of type int"),
    ("api.GenerateRequest", {"options": {"top_k": 1e12}},
     'option "top_k" must be an integer between -2147483648 and 2147483647'),
    ("api.GenerateRequest", {"options": {"seed": 2**70}},
     'option "seed" must be an integer between -9223372036854775808 and 9223372036854775807'),
    ("api.GenerateRequest", {"options": {"temperature": 1e39}},
     'option "temperature" must be a finite float32'),
    ("api.GenerateRequest", {"keep_alive": 1e20},
     "keep_alive 1e+20 is out of range: a duration is at most 2562047h47m16.854775807s (a "
     "negative keep_alive keeps the model loaded forever)"),
    ("api.GenerateRequest", {"keep_alive": "99999999999h"},
     'time: invalid duration "99999999999h"'),
    ("api.ChatRequest", {"messages": [None]},
     "json: cannot unmarshal null into Go struct field ChatRequest.messages of type api.Message"),
    ("api.ChatRequest", {"messages": [{"role": "user", "tool_calls": [{"function": 1}]}]},
     "json: cannot unmarshal number into Go struct field ChatRequest.messages.tool_calls.function "
     "of type api.ToolCallFunction"),
    ("api.ChatRequest", {"tools": [None]},
     "json: cannot unmarshal null into Go struct field ChatRequest.tools of type api.Tool"),
    ("api.ChatRequest", {"messages": [{"role": "user"}] * (limits.MAX_CHAT_MESSAGES + 1)},
     "too many messages: 10001 (the limit is 10000 per request)"),
    ("api.EmbedRequest", {"input": ["x"] * (limits.MAX_EMBED_INPUTS + 1)},
     "too many inputs: 2049 (the limit is 2048 per request)"),
    ("api.CreateRequest", {"files": {"a.gguf": None}},
     "json: cannot unmarshal null into Go struct field CreateRequest.files of type string"),
    ("api.CreateRequest", {"parameters": {"stop": [{"a": 1}]}},
     'option "stop" must be of an array of strings'),
    ("api.CreateRequest", {"parameters": {"custom": {"a": 1}}},
     'parameter "custom" must be a string, number, boolean or a list of them'),
    ("api.CopyRequest", {"source": ["x"]},
     "json: cannot unmarshal array into Go struct field CopyRequest.source of type string"),
    ("api.PullRequest", {"insecure": "yes"},
     "json: cannot unmarshal string into Go struct field PullRequest.insecure of type bool"),
    ("openai.ChatCompletionRequest", {"max_tokens": 2**40},
     "json: cannot unmarshal number 1099511627776 into Go struct field "
     "ChatCompletionRequest.max_tokens of type int32"),
    ("openai.ChatCompletionRequest", {"temperature": 1e39},
     "json: cannot unmarshal number 1e+39 into Go struct field ChatCompletionRequest.temperature "
     "of type float32"),
    ("openai.CompletionRequest", {"prompt": ["a"]},
     "json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string"),
])
def test_fields_are_checked_in_gos_words(type_name, body, message):
    assert refused(json.dumps(body).encode(), type_name) == message


def test_every_route_reading_json_has_a_spec():
    assert {"api.GenerateRequest", "api.ChatRequest", "api.EmbedRequest",
            "api.EmbeddingRequest", "api.CreateRequest", "api.ShowRequest", "api.CopyRequest",
            "api.DeleteRequest", "api.PullRequest", "api.PushRequest",
            "openai.ChatCompletionRequest", "openai.CompletionRequest", "openai.EmbedRequest",
            "openai.ResponsesRequest"} <= set(SPECS)


def test_null_fields_mean_absent_and_unknown_fields_are_ignored():
    body = {"model": MODEL, "prompt": None, "options": None, "bogus": [None]}
    assert decode_request(json.dumps(body).encode(), "api.GenerateRequest") == body


# -- through the app: size limits and the OpenAI shape -------------------------------------------

async def test_a_declared_length_over_the_limit_is_refused_unread(client, monkeypatch):
    monkeypatch.setitem(limits.BODY_LIMITS, "/api/generate", 1000)
    response = await client.post("/api/generate", data=b"{" + b" " * 2000 + b"}",
                                 headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert await response.json() == {"error": "request body too large: Content-Length 2002 is "
                                              "over the 1000 bytes limit of /api/generate"}


async def test_a_chunked_body_is_cut_off_when_it_crosses_the_limit(client):
    sent = 0

    async def chunks():
        nonlocal sent
        for _ in range(limits.SMALL_BODY_BYTES // 65536 * 4):
            sent += 65536
            yield b" " * 65536

    response = await client.post("/api/show", data=chunks())
    assert response.status == 413
    assert (await response.json())["error"] == \
        "request body too large: over the 1 MiB limit of /api/show"


async def test_openai_routes_answer_in_openai_shape(client):
    response = await client.post("/v1/chat/completions", data=b'{"model":1}')
    assert response.status == 400
    assert (await response.json())["error"] == {
        "message": "json: cannot unmarshal number into Go struct field "
                   "ChatCompletionRequest.model of type string",
        "type": "invalid_request_error", "param": None, "code": None}


async def test_a_big_body_is_checked_off_the_event_loop(client, monkeypatch):
    on_main_thread = []
    real = schemas.decode_request

    def watched(*args):
        on_main_thread.append(threading.current_thread() is threading.main_thread())
        return real(*args)

    monkeypatch.setattr(schemas, "decode_request", watched)
    small = [{"role": "user", "content": "x"}]
    big = [{"role": "user", "content": "x" * 100}] * 5000  # > 256 KiB
    for history in (small, big):
        response = await client.post("/api/chat", json={"model": MODEL, "messages": history,
                                                        "stream": False})
        assert response.status == 200
    assert on_main_thread == [True, False]
