"""Named renderers and parsers through real processes: models made with ``/api/create``
(``renderer``/``parser``) from SmolLM2, which serves as the engine.

SmolLM2 does not speak these formats, so the tests assert on the plumbing: the prompt is the
renderer's (``_debug_render_only``), ``/api/show`` reports the names and the capabilities
they bring, and the parser reads the runner's real token stream — made to hold the family's
markup by a forced ``tool_choice`` (a grammar in the model's own tool-call format), or, for
thinking, compared with the raw text of the very same generation.
"""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.model_helpers import created

pytestmark = pytest.mark.e2e

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string", "maxLength": 20, "description": "The city"}}}}}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
FORMATS = {  # parser → (renderer, a marker only that renderer writes)
    "qwen3": ("qwen3", "For each function call, return a json object"),
    "qwen3-coder": ("qwen3-coder", "<function>\n<name>get_weather</name>"),
    "deepseek3": ("deepseek3.1", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_call_name"),
    "harmony": ("harmony", "type get_weather = (_: {"),
}


@pytest.mark.parametrize("parser", list(FORMATS))
def test_renderer_and_parser_end_to_end(corral, parser):
    renderer, marker = FORMATS[parser]
    with created(corral, f"smol-{parser}", renderer=renderer, parser=parser) as name:
        status, shown = corral.post("/api/show", {"model": name})
        assert status == 200 and (shown["renderer"], shown["parser"]) == (renderer, parser)
        assert "tools" in shown["capabilities"]
        assert f"\nRENDERER {renderer}\nPARSER {parser}\n" in shown["modelfile"]

        status, debug = corral.post("/api/chat", {
            "model": name, "messages": QUESTION, "tools": [WEATHER], "stream": False,
            "think": False, "_debug_render_only": True})
        assert status == 200, debug
        assert marker in debug["_debug_info"]["rendered_template"]

        client = openai.OpenAI(base_url=corral.url + "/v1", api_key="x", max_retries=0,
                               timeout=120)
        chunks = list(client.chat.completions.create(
            model=name, messages=QUESTION, tools=[WEATHER], tool_choice="required",
            stream=True, temperature=0, seed=1, max_tokens=160))
        calls = [c for chunk in chunks for choice in chunk.choices
                 for c in choice.delta.tool_calls or []]
        (call,) = calls
        assert call.function.name == "get_weather"
        city = json.loads(call.function.arguments)["city"]
        assert isinstance(city, str) and city and "<" not in city
        assert not "".join(choice.delta.content or "" for chunk in chunks
                           for choice in chunk.choices)  # no markup leaked into content
        assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_thinking_parser_splits_the_real_stream(corral):
    """qwen3-thinking: a thinking reply is thinking until </think>; SmolLM2 never writes one,
    so all it says must come back as ``thinking``, equal to the raw text of the same prompt."""
    options = {"temperature": 0, "seed": 3, "num_predict": 24}
    with created(corral, "smol-qwen3-thinking", renderer="qwen3",
                 parser="qwen3-thinking") as name:
        status, shown = corral.post("/api/show", {"model": name})
        assert shown["capabilities"] == ["completion", "tools", "thinking"]
        request = {"model": name, "messages": QUESTION, "think": True, "options": options,
                   "stream": False}
        status, debug = corral.post("/api/chat", {**request, "_debug_render_only": True})
        prompt = debug["_debug_info"]["rendered_template"]
        assert prompt.endswith("<|im_start|>assistant\n")  # thinking on: no empty think block
        status, reply = corral.post("/api/chat", request)
        assert status == 200, reply
        message = reply["message"]
        assert message["content"] == "" and message["thinking"]
        status, raw = corral.post("/api/generate", {"model": name, "prompt": prompt, "raw": True,
                                                    "options": options, "stream": False})
        assert raw["response"].strip() == message["thinking"]
        streamed = [line["message"] for line in corral.stream("/api/chat", {**request,
                                                                           "stream": True})]
        assert "".join(m.get("thinking", "") for m in streamed) == message["thinking"]
        assert len([m for m in streamed if m.get("thinking")]) > 1  # token by token
        status, off = corral.post("/api/chat", {**request, "think": False,
                                                "_debug_render_only": True})
        assert off["_debug_info"]["rendered_template"].endswith("<think>\n\n</think>\n\n")


def test_unknown_names_are_refused_at_create(corral):
    status, body = corral.post("/api/create", {"model": "smol-bad", "from": "smollm2:135m",
                                               "parser": "klingon", "stream": False})
    assert status == 400 and body["error"].startswith('unknown parser "klingon"')
