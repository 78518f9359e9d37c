"""``/v1/messages`` and ``/v1/messages/count_tokens`` through the real app and Scheduler with
fake runners: reply shapes, the typed event stream, pings, errors, forced tool calls."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.anthropic import wire
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.gateway.fakes import Script, resolved_model
from tests.gateway.formats.recorded import GO_TOOLS_TEMPLATE

URL = "/v1/messages"
BODY = {"model": "smollm2:135m", "max_tokens": 32, "messages": [{"role": "user",
                                                                 "content": "Hi"}]}
TOOL = {"name": "get_weather", "input_schema": {"type": "object", "required": ["city"],
                                                "properties": {"city": {"type": "string"}}}}
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def events(text: str) -> list[dict]:
    out = []
    for block in text.split("\n\n")[:-1]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[len("data: "):])
        assert payload["type"] == name[len("event: "):]
        out.append(payload)
    return out


@pytest.fixture
def tools_model(registry):
    model = resolved_model("tools:latest", "ef" * 32, chat_template="")
    model.template = GO_TOOLS_TEMPLATE
    registry.models["tools:latest"] = model
    return "tools"


async def test_message_object(client, spawner):
    response = await client.post(URL, json={**BODY, "system": "Be brief."})
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert body["id"].startswith("msg_") and body["type"] == "message"
    assert body["content"] == [{"type": "text", "text": "Hello, world!"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    assert body["usage"] == {"input_tokens": 7, "output_tokens": 4}
    (request,) = spawner.spawned[0].client.requests
    assert request.num_predict == 32 and "Be brief." in request.prompt


async def test_stream_events_in_order(client, spawner):
    spawner.script = Script(done_reason=pb.DONE_REASON_LENGTH)
    response = await client.post(URL, json={**BODY, "stream": True})
    assert response.headers["Content-Type"] == "text/event-stream"
    got = events(await response.text())
    assert [e["type"] for e in got] == (
        ["message_start", "ping", "content_block_start"] + ["content_block_delta"] * 4
        + ["content_block_stop", "message_delta", "message_stop"])
    assert got[0]["message"]["content"] == [] and got[0]["message"]["usage"]["output_tokens"] == 0
    assert got[2]["content_block"] == {"type": "text", "text": ""}
    assert "".join(e["delta"]["text"] for e in got[3:7]) == "Hello, world!"
    assert got[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert got[-2]["usage"] == {"input_tokens": 7, "output_tokens": 4}


async def test_pings_while_the_model_is_silent(client, spawner, monkeypatch):
    monkeypatch.setattr(wire, "PING_INTERVAL_S", 0.05)
    from gateway.anthropic import routes
    monkeypatch.setattr(routes, "PING_INTERVAL_S", 0.05)
    spawner.script = Script(pieces=("slow",), delay=0.3)
    got = events(await (await client.post(URL, json={**BODY, "stream": True})).text())
    kinds = [e["type"] for e in got]
    assert kinds[0] == "message_start" and kinds.count("ping") >= 3
    assert kinds.index("content_block_start") > kinds.index("ping")
    assert kinds[-1] == "message_stop"


async def test_forced_tool_call_streams_a_tool_use_block(client, spawner, tools_model):
    spawner.script = Script(pieces=tuple(CALL_TEXT[i:i + 7] for i in range(0, len(CALL_TEXT), 7)))
    body = {**BODY, "model": tools_model, "tools": [TOOL], "stream": True,
            "tool_choice": {"type": "tool", "name": "get_weather"}}
    got = events(await (await client.post(URL, json=body)).text())
    start = next(e for e in got if e["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "get_weather" and start["content_block"]["input"] == {}
    delta = next(e for e in got if e["type"] == "content_block_delta")
    assert json.loads(delta["delta"]["partial_json"]) == {"city": "Paris"}
    assert got[-2]["delta"]["stop_reason"] == "tool_use"
    (request,) = spawner.spawned[0].client.requests
    assert request.grammar.startswith('root ::= ( "<tool_call>\\n{\\"name\\": \\"get_weather\\"')
    assert json.loads(request.grammar_schemas["tool-args-0"]) == TOOL["input_schema"]


async def test_tool_choice_none_offers_no_tools(client, spawner, tools_model):
    body = {**BODY, "model": tools_model, "tools": [TOOL], "tool_choice": {"type": "none"}}
    assert (await client.post(URL, json=body)).status == 200
    (request,) = spawner.spawned[0].client.requests
    assert "get_weather" not in request.prompt and not request.grammar


@pytest.mark.parametrize("body,status,kind,message", [
    ({**BODY, "model": "nope"}, 404, "not_found_error", "model 'nope' not found"),
    ({**BODY, "max_tokens": None}, 400, "invalid_request_error", "max_tokens is required"),
    ({**BODY, "tools": [TOOL]}, 400, "invalid_request_error", "does not support tools"),
    ({**BODY, "tools": [TOOL], "model": "tools", "tool_choice": {"type": "any"},
      "thinking": {"type": "enabled", "budget_tokens": 2000}}, 400, "invalid_request_error",
     "Thinking may not be enabled when tool_choice forces tool use."),
])
async def test_errors_in_anthropics_shape(client, tools_model, body, status, kind, message):
    response = await client.post(URL, json={**body, "stream": True})
    assert response.status == status and response.headers["Content-Type"] == "application/json"
    payload = await response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == kind
    assert message in payload["error"]["message"] and payload["request_id"]


async def test_malformed_json_and_thinking_relaxed(client):
    response = await client.post(URL, data=b"{oops")
    payload = await response.json()
    assert response.status == 400 and payload["error"]["type"] == "invalid_request_error"
    # a model that cannot think answers anyway (Ollama relaxes thinking for agents)
    body = {**BODY, "thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert (await client.post(URL, json=body)).status == 200


async def test_mid_stream_failure_is_an_error_event(client, spawner):
    spawner.script = Script(fail_after=2)
    got = events(await (await client.post(URL, json={**BODY, "stream": True})).text())
    assert [e["type"] for e in got[:2]] == ["message_start", "ping"]
    assert got[-1]["type"] == "error" and got[-1]["error"] == {
        "type": "overloaded_error", "message": "Socket closed"}  # the runner's 503


async def test_count_tokens_uses_the_models_tokenizer(client):
    body = {"model": "smollm2:135m", "messages": [{"role": "user", "content": "one two three"}]}
    response = await client.post(URL + "/count_tokens", json=body)
    # the fake tokenizer counts the words of the whole rendered SmolLM2 prompt, plus a BOS
    prompt = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
              "Hugging Face<|im_end|>\n<|im_start|>user\none two three<|im_end|>\n"
              "<|im_start|>assistant\n")
    assert response.status == 200
    assert (await response.json())["input_tokens"] == 1 + len(prompt.split())
    missing = await client.post(URL + "/count_tokens", json={**body, "model": "nope"})
    assert missing.status == 404 and (await missing.json())["error"]["type"] == "not_found_error"


async def test_keepalive_wrapper_yields_pings_then_items():
    ready = asyncio.Event()

    async def slow():
        await ready.wait()
        yield "a"
    items = []
    async for item in wire.with_keepalive(slow(), 0.01):
        items.append(item)
        if items.count(wire.KEEPALIVE) == 2:
            ready.set()  # the item comes once two pings have kept the stream alive
    assert items == [wire.KEEPALIVE, wire.KEEPALIVE, "a"]


async def test_forced_call_on_a_model_that_cannot_think_ignores_thinking(client, registry,
                                                                          spawner):
    model = resolved_model("plain-tools:latest", "56" * 32, chat_template="")
    model.template = ("{{ range .Messages }}{{ .Content }}{{ end }}{{ range .Tools }}{{ . }}"
                      "{{ end }}")
    registry.models["plain-tools:latest"] = model
    spawner.script = Script(pieces=('{"name": "get_weather", "arguments": {"city": "Oslo"}}',))
    body = {**BODY, "model": "plain-tools", "tools": [TOOL], "tool_choice": {"type": "any"},
            "thinking": {"type": "enabled", "budget_tokens": 2000}}
    reply = await (await client.post(URL, json=body)).json()
    assert reply["content"][0]["input"] == {"city": "Oslo"} and reply["stop_reason"] == "tool_use"
