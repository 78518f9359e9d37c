"""``/v1/chat/completions`` through the real app and Scheduler with fake runners, plus the
request/response translation functions on their own."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from gateway.openai.chat import ChatChunks, ChatCompletionRequest, chat_completion, native_messages
from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.gateway.fakes import FakeRunnerClient, Script, resolved_model
from tests.gateway.sse import sse_events

MODEL = "smollm2:135m"
URL = "/v1/chat/completions"
USER = [{"role": "user", "content": "Hi"}]


async def test_non_stream_completion_shape(client, spawner):
    response = await client.post(URL, json={"model": MODEL, "messages": USER})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    text = await response.text()
    assert text.endswith("}\n")
    body = json.loads(text)
    assert list(body) == ["id", "object", "created", "model", "system_fingerprint", "choices",
                          "usage"]
    assert re.fullmatch(r"chatcmpl-\d{1,3}", body["id"])
    assert body["object"] == "chat.completion" and body["system_fingerprint"] == "fp_ollama"
    assert body["model"] == MODEL and isinstance(body["created"], int)
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant",
                                                        "content": "Hello, world!"},
                                "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    (request,) = spawner.spawned[0].client.requests
    assert request.prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


async def test_sampling_defaults_are_openai_ones(client, spawner):
    await client.post(URL, json={"model": MODEL, "messages": USER})
    sampling = spawner.spawned[0].client.requests[0].sampling
    assert sampling.temperature == 1.0 and sampling.top_p == 1.0  # not the model's 0.8 / 0.9


async def test_request_fields_become_options(client, spawner):
    await client.post(URL, json={
        "model": MODEL, "messages": USER, "temperature": 0.25, "top_p": 0.5, "seed": 7,
        "max_tokens": 3, "stop": "\n", "frequency_penalty": 0.5, "presence_penalty": 0.25})
    await client.post(URL, json={"model": MODEL, "messages": USER, "max_completion_tokens": 9,
                                 "stop": ["a", "b"]})
    first, second = spawner.spawned[0].client.requests
    assert (first.sampling.temperature, first.sampling.top_p, first.sampling.seed) == (0.25, 0.5, 7)
    assert first.num_predict == 3 and list(first.stop) == ["\n"]
    assert (first.sampling.frequency_penalty, first.sampling.presence_penalty) == (0.5, 0.25)
    assert second.num_predict == 9 and list(second.stop) == ["a", "b"]


async def test_length_finish_reason(client, spawner):
    spawner.script.done_reason = pb.DONE_REASON_LENGTH
    body = await (await client.post(URL, json={"model": MODEL, "messages": USER})).json()
    assert body["choices"][0]["finish_reason"] == "length"


async def test_stream_chunks_finish_usage_and_done(client):
    response = await client.post(URL, json={"model": MODEL, "messages": USER, "stream": True,
                                            "stream_options": {"include_usage": True}})
    assert response.headers["Content-Type"] == "text/event-stream"
    *chunks, finish, usage, done = sse_events(await response.text())
    assert done == "[DONE]"
    assert len({c["id"] for c in [*chunks, finish, usage]}) == 1
    assert len({c["created"] for c in [*chunks, finish, usage]}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in [*chunks, finish, usage])
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hello"}
    assert [c["choices"][0]["delta"] for c in chunks[1:]] == [
        {"content": ","}, {"content": " world"}, {"content": "!"}]
    assert all(c["choices"][0]["finish_reason"] is None and "usage" not in c for c in chunks)
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


async def test_stream_without_usage_ends_with_finish_chunk(client):
    response = await client.post(URL, json={"model": MODEL, "messages": USER, "stream": True})
    *_, finish, done = sse_events(await response.text())
    assert done == "[DONE]" and finish["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in finish


async def test_content_parts_become_separate_messages(client, spawner):
    messages = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": [{"type": "text", "text": "One."},
                                             {"type": "text", "text": "Two."}]}]
    await client.post(URL, json={"model": MODEL, "messages": messages})
    prompt = spawner.spawned[0].client.requests[0].prompt
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt
    assert "One.<|im_end|>" in prompt and "Two.<|im_end|>" in prompt


async def test_error_mid_stream_is_an_error_event(client, spawner):
    spawner.script.fail_after = 2
    response = await client.post(URL, json={"model": MODEL, "messages": USER, "stream": True})
    assert response.status == 200
    events = sse_events(await response.text())
    assert "[DONE]" not in events
    assert events[-1]["error"]["type"] == "api_error" and events[-1]["error"]["message"]


async def test_error_before_streaming_keeps_its_status(client):
    response = await client.post(URL, json={"model": "nope", "messages": USER, "stream": True})
    assert response.status == 404
    assert await response.json() == {"error": {"message": "model 'nope' not found",
                                               "type": "not_found_error", "param": None,
                                               "code": None}}


@pytest.mark.parametrize("body,status,message", [
    ({"model": MODEL, "messages": []}, 400, "[] is too short - 'messages'"),
    ({"model": MODEL}, 400, "[] is too short - 'messages'"),
    ({"model": "", "messages": USER}, 400, "model is required"),
    ({"model": MODEL, "messages": USER, "temperature": "hot"}, 400,
     "json: cannot unmarshal string into Go struct field ChatCompletionRequest.temperature "
     "of type float64"),
    ({"model": MODEL, "messages": USER, "max_tokens": 2.5}, 400,
     "json: cannot unmarshal number 2.5 into Go struct field ChatCompletionRequest.max_tokens "
     "of type int"),
    ({"model": MODEL, "messages": ["hi"]}, 400, "json: cannot unmarshal string into Go struct "
     "field ChatCompletionRequest.messages of type openai.Message"),
    ({"model": MODEL, "messages": [{"role": "user", "content": 3}]}, 400,
     "invalid message content type: float64"),
    ({"model": MODEL, "messages": [{"role": "user"}]}, 400, "invalid message content type: <nil>"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 400,
     "invalid message format"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]}]}, 400,
     "image URLs are not currently supported, please use base64 encoded data instead"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": "data:text/plain;base64,aGk="}]}]}, 400,
     "invalid image input"),
    ({"model": MODEL, "messages": USER, "reasoning_effort": "extreme"}, 400,
     "invalid reasoning value: 'extreme' (must be \"none\", \"minimal\", \"low\", \"medium\", "
     "\"high\", \"max\", \"xhigh\", or \"ultra\")"),
    ({"model": MODEL, "messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
     400, "invalid tool call arguments"),
])
async def test_errors_have_openai_shape(client, body, status, message):
    response = await client.post(URL, json=body)
    assert response.status == status
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"error": {"message": message,
                                               "type": "invalid_request_error",
                                               "param": None, "code": None}}


async def test_malformed_json_is_openai_error(client):
    response = await client.post(URL, data=b"[1]")
    body = await response.json()
    assert response.status == 400 and body["error"]["message"] == (
        "json: cannot unmarshal array into Go value of type openai.ChatCompletionRequest")


# -- translation, without HTTP --------------------------------------------------------------------

def test_request_translation_format_tools_think():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = ChatCompletionRequest.parse({
        "model": MODEL, "messages": USER, "tools": tools, "reasoning": {"effort": "minimal"},
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert req.native["format"] == schema and req.native["tools"] == tools
    assert req.native["think"] == "low" and req.native["stream"] is False
    assert not req.stream and not req.include_usage
    assert ChatCompletionRequest.parse({"model": MODEL, "messages": USER, "response_format": {
        "type": "JSON_OBJECT"}}).native["format"] == "json"
    assert "format" not in ChatCompletionRequest.parse({
        "model": MODEL, "messages": USER, "response_format": {"type": "text"}}).native
    assert ChatCompletionRequest.parse({"model": MODEL, "messages": USER,
                                        "reasoning_effort": "none"}).native["think"] is False


def test_tool_messages_translation():
    messages = native_messages([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "reasoning": "Use the tool.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
        {"role": "tool", "name": "other", "content": "x"},
    ])
    assert messages[1] == {"role": "assistant", "content": "", "thinking": "Use the tool.",
                           "tool_calls": [{"id": "call_1", "function": {
                               "index": 0, "name": "get_weather",
                               "arguments": {"city": "Paris"}}}]}
    assert messages[2] == {"role": "tool", "content": "22C", "tool_name": "get_weather",
                           "tool_call_id": "call_1"}
    assert messages[3]["tool_name"] == "other"


def test_image_part_becomes_native_images():
    (text, image) = native_messages([{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert text == {"role": "user", "content": "What is this?"}
    # the client's message index travels along, for errors about the image
    assert image == {"role": "user", "content": "", "images": ["iVBORw0KGgo="],
                     "_message_index": 0}
    with pytest.raises(InvalidRequestError, match="invalid message format"):
        native_messages([{"role": "user", "content": [
            {"type": "image_url", "image_url": "data:image/png;base64,@@@"}]}])


NATIVE_CALL = {"id": "call_abc", "function": {"index": 0, "name": "get_weather",
                                              "arguments": {"city": "Paris", "unit": "C"}}}
OPENAI_CALL = {"id": "call_abc", "index": 0, "type": "function", "function": {
    "name": "get_weather", "arguments": '{"city":"Paris","unit":"C"}'}}


def test_completion_with_tool_calls_and_reasoning():
    body = chat_completion("chatcmpl-1", {
        "model": MODEL, "message": {"role": "assistant", "content": "", "thinking": "hmm",
                                    "tool_calls": [NATIVE_CALL]},
        "done": True, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 6})
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "", "reasoning": "hmm",
                                 "tool_calls": [OPENAI_CALL]}
    assert choice["finish_reason"] == "tool_calls"
    assert body["usage"]["total_tokens"] == 11


def test_chunks_split_mixed_thinking_and_carry_tool_calls():
    chunks = ChatChunks(ChatCompletionRequest(native={}, stream=True, id="chatcmpl-5"))
    first = chunks.convert({"model": MODEL, "message": {"role": "assistant", "content": "",
                                                        "thinking": "Let me think"}, "done": False})
    mixed = chunks.convert({"model": MODEL, "done": False, "message": {
        "role": "assistant", "content": "", "thinking": ".", "tool_calls": [NATIVE_CALL]}})
    final = chunks.convert({"model": MODEL, "message": {"role": "assistant", "content": ""},
                            "done": True, "done_reason": "stop"})
    deltas = [c["choices"][0]["delta"] for c in first + mixed]
    assert deltas == [{"role": "assistant", "content": "", "reasoning": "Let me think"},
                      {"reasoning": "."}, {"content": "", "tool_calls": [OPENAI_CALL]}]
    assert [c["choices"] for c in final] == [[{"index": 0, "delta": {},
                                               "finish_reason": "tool_calls"}]]


async def test_client_disconnect_closes_the_runner_stream(client, spawner, monkeypatch):
    closed = asyncio.Event()
    original = FakeRunnerClient.generate

    async def watched(self, request):
        try:
            async for item in original(self, request):
                yield item
        finally:
            closed.set()

    monkeypatch.setattr(FakeRunnerClient, "generate", watched)
    spawner.script.pieces = ("tick",) * 200
    spawner.script.delay = 0.02
    response = await client.post(URL, json={"model": MODEL, "messages": USER, "stream": True})
    assert (await response.content.readline()).startswith(b"data: ")
    response.close()
    await asyncio.wait_for(closed.wait(), 3)
    assert len(spawner.spawned[0].client.requests) == 1


# -- issue 18: Ollama options, reasoning_effort, logit_bias, tool_choice --------------------------

async def test_options_extension_reaches_the_runner(client, spawner):
    body = {"model": MODEL, "messages": USER, "temperature": 0.3,
            "options": {"num_ctx": 1024, "top_k": 7, "repeat_penalty": 1.3, "temperature": 0.9}}
    assert (await client.post(URL, json=body)).status == 200
    process = spawner.spawned[0]
    sampling = process.client.requests[0].sampling
    assert process.spec.ctx_size == 1024 and sampling.top_k == 7
    assert sampling.repeat_penalty == pytest.approx(1.3)
    assert sampling.temperature == pytest.approx(0.3)  # the OpenAI field wins over options


async def test_options_extension_on_completions_and_embeddings(client, spawner):
    body = {"model": MODEL, "prompt": "Hi", "options": {"top_k": 3}}
    assert (await client.post("/v1/completions", json=body)).status == 200
    assert spawner.spawned[0].client.requests[0].sampling.top_k == 3
    bad = await client.post("/v1/embeddings", json={"model": MODEL, "input": "x",
                                                    "options": {"num_ctx": "big"}})
    assert bad.status == 400 and "num_ctx" in (await bad.json())["error"]["message"]
    wrong = await client.post(URL, json={"model": MODEL, "messages": USER, "options": [1]})
    assert wrong.status == 400


@pytest.mark.parametrize("path,body", [
    (URL, {"messages": USER}), ("/v1/completions", {"prompt": "Hi"})])
async def test_logit_bias_is_refused(client, path, body):
    response = await client.post(path, json={"model": MODEL, **body, "logit_bias": {"50256": -100}})
    assert response.status == 400
    assert (await response.json())["error"]["message"] == "logit_bias is not supported"
    empty = await client.post(path, json={"model": MODEL, **body, "logit_bias": {}})
    assert empty.status == 200


async def test_reasoning_effort_reaches_jinja_templates(client, registry, spawner):
    thinking = resolved_model("thinker:latest", "12" * 32, chat_template=(
        "{% if enable_thinking %}<think>{% endif %}[{{ reasoning_effort }}]"
        "{% for m in messages %}{{ m.content }}{% endfor %}</think>"))
    registry.models["thinker:latest"] = thinking
    body = {"model": "thinker", "messages": USER, "reasoning_effort": "high"}
    assert (await client.post(URL, json=body)).status == 200
    assert spawner.spawned[0].client.requests[0].prompt.startswith("<think>[high]Hi")


async def test_tool_choice_required_forces_a_call(client, registry, spawner):
    model = resolved_model("tooly:latest", "34" * 32, chat_template="")
    model.template = ("{{ range .Messages }}{{ .Content }}{{ if .ToolCalls }}{{ range .ToolCalls }}"
                      "{{ .Function.Name }}{{ end }}{{ end }}{{ end }}{{ range .Tools }}{{ . }}"
                      "{{ end }}")
    registry.models["tooly:latest"] = model
    spawner.script = Script(pieces=('{"name": "f", ', '"arguments": {"x": 1}}'))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}}}}]
    body = {"model": "tooly", "messages": USER, "tools": tools, "tool_choice": "required"}
    reply = await (await client.post(URL, json=body)).json()
    (call,) = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "f", "arguments": '{"x":1}'}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    request = spawner.spawned[0].client.requests[0]
    assert request.grammar.startswith('root ::= ( "{\\"name\\": \\"f\\"')
    bad = await client.post(URL, json={**body, "tool_choice": {"type": "function"}})
    assert bad.status == 400 and "invalid tool_choice" in (await bad.json())["error"]["message"]
