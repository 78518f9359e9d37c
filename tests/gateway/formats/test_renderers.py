"""The named renderers: each family's prompt layout for system text, tools, tool calls and
results, reasoning and the generation prompt; and ``reasoning_effort`` for Jinja templates."""

from __future__ import annotations

import datetime as dt

from gateway.formats.deepseek import DeepSeekRenderer
from gateway.formats.harmony import HarmonyRenderer
from gateway.formats.harmony_prompt import harmony_names, render_harmony, ts_type
from gateway.formats.qwen3 import Qwen3Renderer
from gateway.formats.qwen3_coder import Qwen3CoderRenderer
from gateway.prompt import Think, render_chat_template
from tests.gateway.formats.recorded import DASHED, WEATHER

CALL = {"id": "call_1", "function": {"index": 0, "name": "get_weather",
                                     "arguments": {"city": "Paris"}}}
LOOP = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "thinking": "Call the tool.", "tool_calls": [CALL]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}]


def test_harmony_layout_effort_and_tools():
    text = render_harmony(LOOP, tools=[WEATHER], effort="high", today=dt.date(2026, 1, 2))
    assert text.startswith("<|start|>system<|message|>You are ChatGPT")
    assert "Current date: 2026-01-02\n\nReasoning: high\n\n# Valid channels" in text
    assert "Calls to these tools must go to the commentary channel: 'functions'.<|end|>" in text
    assert ("<|start|>developer<|message|># Instructions\n\nBe brief.\n\n# Tools\n\n"
            "## functions\n\nnamespace functions {\n\n// Get the weather\n"
            "type get_weather = (_: {\ncity: string,\ndays?: number,\nmetric?: boolean,\n"
            "}) => any;\n\n} // namespace functions<|end|>") in text
    assert ("<|start|>user<|message|>Weather in Paris?<|end|>"
            "<|start|>assistant<|channel|>analysis<|message|>Call the tool.<|end|>"
            "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
            '<|message|>{"city": "Paris"}<|call|>'
            "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny"
            "<|end|><|start|>assistant") in text
    assert text.endswith("<|start|>assistant")


def test_harmony_drops_reasoning_of_finished_turns_and_maps_effort():
    history = [{"role": "user", "content": "a"},
               {"role": "assistant", "content": "b", "thinking": "old thought"},
               {"role": "user", "content": "c"}]
    text = HarmonyRenderer().render(history, think=Think(False))
    assert "old thought" not in text and "Reasoning: low" in text
    assert "<|channel|>final<|message|>b<|end|>" in text
    assert "Reasoning: medium" in HarmonyRenderer().render(history, think=Think(True))
    assert "Reasoning: high" in HarmonyRenderer().render(history, think=Think("max"))
    assert "# Tools" not in text and "<|start|>developer" not in text


def test_harmony_names_are_identifiers_and_unique():
    other = {"function": {"name": "get weather/v2"}}
    assert harmony_names([DASHED, other, {"function": {"name": "python"}}]) == {
        "get-weather.v2": "get_weather_v2", "get weather/v2": "get_weatherv2",
        "python": "python"}
    twin = {"function": {"name": "get_weather_v2"}}
    assert harmony_names([DASHED, twin])["get_weather_v2"] == "get_weather_v2_2"
    assert ts_type({"type": "array", "items": {"enum": ["a", "b"]}}) == 'Array<"a" | "b">'
    assert ts_type({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string | null"


def test_qwen3_tools_calls_results_and_thinking_switch():
    text = Qwen3Renderer().render(LOOP, tools=[WEATHER], think=Think(False))
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert '\n{"type": "function", "function": {"name": "get_weather"' in text
    assert ("<|im_start|>assistant\n<think>\nCall the tool.\n</think>\n\n<tool_call>\n"
            '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
            "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n") in text
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert Qwen3Renderer().render(LOOP[:2], think=Think(True)).endswith(
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n")


def test_qwen3_coder_xml_tools_and_default_system():
    text = Qwen3CoderRenderer().render(LOOP[1:], tools=[WEATHER])
    assert text.startswith("<|im_start|>system\nYou are Qwen, a helpful AI assistant")
    assert ("<tools>\n<function>\n<name>get_weather</name>\n<description>Get the weather"
            "</description>\n<parameters>\n<parameter>\n<name>city</name>\n<type>string</type>"
            "\n</parameter>") in text
    assert '\n<required>["city"]</required>\n</parameters>' in text
    assert ("<|im_start|>assistant\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\n"
            "Paris\n</parameter>\n</function>\n</tool_call><|im_end|>\n") in text
    assert "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n" in text
    assert Qwen3CoderRenderer().render([{"role": "user", "content": "hi"}]) == \
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_deepseek_markers_and_think_switch():
    text = DeepSeekRenderer().render(LOOP, tools=[WEATHER], think=Think(True))
    assert text.startswith("<｜begin▁of▁sentence｜>Be brief.\n\n## Tools\n")
    assert "\n### get_weather\nDescription: Get the weather\n\nParameters: {" in text
    assert ("<｜User｜>Weather in Paris?<｜Assistant｜></think><｜tool▁calls▁begin｜>"
            "<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}"
            "<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
            "<｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>") in text
    question = [{"role": "user", "content": "hi"}]
    assert DeepSeekRenderer().render(question, think=Think(True)).endswith("<｜Assistant｜><think>")
    assert DeepSeekRenderer().render(question, think=Think(False)).endswith(
        "<｜Assistant｜></think>")


def test_jinja_templates_receive_reasoning_effort():
    source = "{{ reasoning_effort | default('unset') }}/{{ enable_thinking | default('unset') }}"
    user = [{"role": "user", "content": "x"}]
    assert render_chat_template(source, user, think=Think("high")) == "high/True"
    assert render_chat_template(source, user, think=Think(True)) == "medium/True"
    assert render_chat_template(source, user, think=Think(False)) == "unset/False"
    assert render_chat_template(source, user) == "unset/unset"
