"""Generate/chat parity through the real app: capabilities, templates, thinking, tools, format,
context fitting — with fake runners that replay scripted output."""

from __future__ import annotations

import json

import pytest

from gateway.fitting import PROMPT_TOO_LONG
from tests.gateway.fakes import resolved_model
from tests.gateway.templates import LLAMA31, QWEN3_THINKING, WEATHER

MODEL = "smollm2:135m"
USER = [{"role": "user", "content": "Hi"}]


async def lines(response) -> list[dict]:
    return [json.loads(line) for line in (await response.text()).splitlines()]


def add_go_model(registry, name: str, template: str, digest: str) -> None:
    model = resolved_model(name, digest, chat_template="")
    model.template = template
    registry.models[name] = model


async def post(client, path: str, body: dict) -> tuple[int, dict]:
    response = await client.post(path, json=body)
    return response.status, await response.json()


@pytest.mark.parametrize("path,body,status,error", [
    ("/api/generate", {"model": MODEL, "prompt": "x", "think": True}, 400,
     '"smollm2:135m" does not support thinking'),
    ("/api/chat", {"model": MODEL, "messages": USER, "think": "high"}, 400,
     '"smollm2:135m" does not support thinking'),
    ("/api/chat", {"model": MODEL, "messages": USER, "tools": WEATHER}, 400,
     "registry.ollama.ai/library/smollm2:135m does not support tools"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "suffix": "y"}, 400,
     "registry.ollama.ai/library/smollm2:135m does not support insert"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "images": ["aGk="]}, 400,
     "registry.ollama.ai/library/smollm2:135m does not support vision"),
    ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "x",
                                                 "images": ["data:image/png;base64,aGk="]}]},
     400, "illegal base64 data at input byte 4"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "format": "xml"}, 400,
     'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'),
    ("/api/chat", {"model": MODEL, "messages": USER, "think": "ultra"}, 400,
     'invalid think value: "ultra" (must be "high", "medium", "low", "max", true, or false)'),
    ("/api/generate", {"model": MODEL, "prompt": "x", "raw": True, "template": "{{ .Prompt }}"},
     400, "raw mode does not support template, system, or context"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "template": "{{ .Prompt "}, 400,
     "template: :1: unclosed action"),
    ("/api/generate", {"model": MODEL, "prompt": "x", "options": {"temperature": "hot"}}, 400,
     'option "temperature" must be of type float32'),
    ("/api/generate", {"model": MODEL, "prompt": "x", "top_logprobs": 21}, 400,
     "top_logprobs must be between 0 and 20"),
    ("/api/generate", {"model": MODEL, "think": True}, 400,
     '"smollm2:135m" does not support thinking'),
])
async def test_request_errors(client, spawner, path, body, status, error):
    assert await post(client, path, body) == (status, {"error": error})
    assert not spawner.spawned  # rejected before any runner was started


async def test_think_false_and_unknown_options_are_fine(client):
    status, body = await post(client, "/api/chat", {
        "model": MODEL, "messages": USER, "think": False, "stream": False,
        "options": {"bogus": 1, "mirostat": 2, "seed": None}})
    assert status == 200 and body["message"]["content"] == "Hello, world!"


async def test_format_travels_as_a_json_schema(client, spawner):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    await post(client, "/api/generate", {"model": MODEL, "prompt": "x", "stream": False,
                                         "format": schema})
    await post(client, "/api/chat", {"model": MODEL, "messages": USER, "stream": False,
                                     "format": "json"})
    first, second = spawner.spawned[0].client.requests
    assert json.loads(first.json_schema) == schema and second.json_schema == '{"type":"object"}'
    assert not first.grammar


async def test_tool_calls_come_back_in_ollamas_shape(client, registry, spawner):
    add_go_model(registry, "tooly:latest", LLAMA31, "ef" * 32)
    spawner.script.pieces = ('{"name": "get_weather", ', '"parameters": {"city": "Paris"}}')
    body = {"model": "tooly", "messages": [{"role": "user", "content": "Weather?"}],
            "tools": WEATHER}
    *chunks, final = await lines(await client.post("/api/chat", json=body))
    calls = [c for chunk in chunks for c in chunk["message"].get("tool_calls", [])]
    assert len(calls) == 1 and list(calls[0]) == ["id", "function"]
    assert calls[0]["function"] == {"index": 0, "name": "get_weather",
                                    "arguments": {"city": "Paris"}}
    assert final["message"] == {"role": "assistant", "content": ""}
    prompt = spawner.spawned[0].client.requests[0].prompt
    assert '"name":"get_weather"' in prompt and "Question: Weather?" in prompt
    status, merged = await post(client, "/api/chat", {**body, "stream": False})
    assert merged["message"]["content"] == "" and merged["message"]["tool_calls"][0][
        "function"]["arguments"] == {"city": "Paris"}


async def test_plain_answers_pass_through_the_tool_parser(client, registry, spawner):
    add_go_model(registry, "tooly:latest", LLAMA31, "ef" * 32)
    status, body = await post(client, "/api/chat", {
        "model": "tooly", "messages": USER, "tools": WEATHER, "stream": False})
    assert body["message"] == {"role": "assistant", "content": "Hello, world!"}


async def test_thinking_is_split_and_on_by_default(client, registry, spawner):
    add_go_model(registry, "thinker:latest", QWEN3_THINKING, "cd" * 32)
    spawner.script.pieces = ("<think>", "Let me ", "see.</th", "ink>\n\n", "Four.")
    status, body = await post(client, "/api/chat", {"model": "thinker", "messages": USER,
                                                    "stream": False})
    assert body["message"] == {"role": "assistant", "content": "Four.",
                               "thinking": "Let me see."}
    *chunks, _ = await lines(await client.post("/api/generate", json={
        "model": "thinker", "prompt": "2+2?"}))
    assert "".join(c.get("thinking", "") for c in chunks) == "Let me see."
    assert "".join(c["response"] for c in chunks) == "Four."
    assert list(chunks[-1]) == ["model", "created_at", "response", "done"]
    status, body = await post(client, "/api/generate", {"model": "thinker", "prompt": "2+2?",
                                                        "think": False, "stream": False})
    assert body["response"] == "<think>Let me see.</think>\n\nFour." and "thinking" not in body
    prompts = [r.prompt for r in spawner.spawned[0].client.requests]
    assert prompts[0].endswith("assistant\n") and prompts[2].endswith("</think>\n\n")


async def test_suffix_uses_the_fill_in_the_middle_template(client, registry, spawner):
    add_go_model(registry, "coder:latest",
                 "{{ if .Suffix }}<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}<MID>{{ else }}"
                 "{{ .Prompt }}{{ end }}", "aa" * 32)
    await post(client, "/api/generate", {"model": "coder", "prompt": "def f(",
                                         "suffix": "return 1", "system": "ignored",
                                         "stream": False})
    assert spawner.spawned[0].client.requests[0].prompt == "<PRE>def f(<SUF>return 1<MID>"


async def test_request_template_and_debug_render_only(client, spawner):
    status, body = await post(client, "/api/generate", {
        "model": MODEL, "prompt": "p", "system": "s", "stream": False,
        "template": "{{ .System }}|{{ .Prompt }}", "_debug_render_only": True})
    assert status == 200 and body["_debug_info"] == {"rendered_template": "s|p",
                                                     "image_count": 0}
    status, body = await post(client, "/api/chat", {"model": MODEL, "messages": USER,
                                                    "_debug_render_only": True})
    assert body["_debug_info"]["rendered_template"].endswith("<|im_start|>assistant\n")
    assert not spawner.spawned[0].client.requests


async def test_long_chat_drops_oldest_messages(client, spawner):
    history = [{"role": "system", "content": "Be brief."}]
    for i in range(6):
        history += [{"role": "user", "content": f"question {i} " + "word " * 40},
                    {"role": "assistant", "content": "answer " * 40}]
    history.append({"role": "user", "content": "final question"})
    status, body = await post(client, "/api/chat", {
        "model": MODEL, "messages": history, "stream": False, "options": {"num_ctx": 200}})
    assert status == 200
    prompt = spawner.spawned[0].client.requests[0].prompt
    assert "Be brief." in prompt and prompt.rstrip().endswith(
        "final question<|im_end|>\n<|im_start|>assistant")
    assert "question 0" not in prompt and "question 5" in prompt
    assert len(prompt.split()) + 1 <= 199


async def test_long_raw_prompt_is_cut_keeping_num_keep(client, spawner):
    text = " ".join(f"t{i}" for i in range(500))
    await post(client, "/api/generate", {"model": MODEL, "prompt": text, "raw": True,
                                         "stream": False, "options": {"num_ctx": 100}})
    request = spawner.spawned[0].client.requests[0]
    assert request.prompt == "" and len(request.context) == 5 + (99 - 5) // 2
    for refusal in ({"truncate": False}, {"shift": False}):
        status, body = await post(client, "/api/generate", {
            "model": MODEL, "prompt": text, "raw": True, "options": {"num_ctx": 100}, **refusal})
        assert (status, body) == (400, {"error": PROMPT_TOO_LONG})

def add_vision_model(registry, name: str = "vlm:latest") -> None:
    model = resolved_model(name, "cc" * 32)
    model.projector_paths.append("/models/blobs/sha256-" + "dd" * 32)
    registry.models[name] = model


async def test_images_reach_the_runner_behind_their_markers(client, registry, spawner):
    from tests.vlm import BLUE, RED, b64, image_bytes

    add_vision_model(registry)
    red, blue = image_bytes(RED), image_bytes(BLUE)
    status, _ = await post(client, "/api/chat", {"model": "vlm", "stream": False, "messages": [
        {"role": "user", "content": "Compare [img] with this", "images": [b64(red), b64(blue)]},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Again", "images": [b64(red)]}]})
    assert status == 200
    status, _ = await post(client, "/api/generate", {"model": "vlm", "prompt": "What?",
                                                     "images": [b64(blue)], "stream": False})
    assert status == 200
    status, _ = await post(client, "/api/generate", {"model": "vlm", "prompt": "Raw [img-1]",
                                                     "raw": True, "stream": False,
                                                     "images": [b64(red), b64(blue)]})
    assert status == 200
    chat, generate, raw = spawner.spawned[0].client.requests
    # Ollama's rule: the first image takes the [img] placeholder, the others go in front
    assert "<|im_start|>user\n[img-1]Compare [img-0] with this<|im_end|>" in chat.prompt
    assert "<|im_start|>user\n[img-2]Again<|im_end|>" in chat.prompt
    assert list(chat.images) == [red, blue, red]
    assert "<|im_start|>user\n[img-0]What?<|im_end|>" in generate.prompt
    assert list(generate.images) == [blue]
    assert raw.prompt == "[img-0]Raw [img-1]" and list(raw.images) == [red, blue]
    assert spawner.spawned[0].spec.projector == "/models/blobs/sha256-" + "dd" * 32


async def test_bad_images_are_400_before_a_runner_starts(client, registry, spawner):
    add_vision_model(registry)
    status, body = await post(client, "/api/chat", {"model": "vlm", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "x", "images": ["aGVsbG8="]}]})
    assert (status, body) == (400, {"error": "message 1: image 0 is not a PNG, JPEG or WebP "
                                             "image"})
    assert not spawner.spawned
