"""Choosing a model's format (named renderer/parser, harmony by family, else the template),
the capabilities that follow, and the grammars that force a tool call in each format."""

from __future__ import annotations

import json

import pytest

from gateway.formats import forced
from gateway.formats.chat_format import ChatFormat
from gateway.formats.registry import check_names
from gateway.prompt import Think
from services.errors import CorralError, InvalidRequestError
from tests.gateway.fakes import resolved_model
from tests.gateway.formats.recorded import GO_TOOLS_TEMPLATE, WEATHER

USER = [{"role": "user", "content": "hi"}]


def model(**fields):
    resolved = resolved_model()
    for key, value in fields.items():
        if key == "family":
            resolved.model.details.family = value
        else:
            setattr(resolved, key, value)
    return resolved


def test_without_names_the_template_renders_and_parses():
    fmt = ChatFormat.for_model(model())
    assert fmt.renderer is None and fmt.spec is None
    assert not fmt.supports_tools and not fmt.supports_thinking
    assert fmt.render(USER).endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_named_renderer_and_parser_decide_prompt_and_capabilities():
    fmt = ChatFormat.for_model(model(renderer="qwen3-coder", parser="qwen3-coder"))
    assert fmt.supports_tools and not fmt.supports_thinking
    assert "<tools>" in fmt.render(USER, tools=[WEATHER])
    thinking = ChatFormat.for_model(model(parser="qwen3-thinking"))
    assert thinking.supports_thinking and thinking.renderer is None  # the template renders


def test_gpt_oss_with_a_harmony_template_gets_the_harmony_parser():
    jinja = "{{ '<|start|>' }}{% for m in messages %}{{ m.content }}{% endfor %}<|end|>" \
            "{{ reasoning_effort }}"
    fmt = ChatFormat.for_model(model(family="gpt-oss", chat_template=jinja))
    assert fmt.parser_name == "harmony" and fmt.supports_thinking
    assert fmt.render(USER, think=Think("max")).endswith("high")  # harmony has no "max"
    assert ChatFormat.for_model(model(chat_template=jinja)).parser_name == ""  # not gpt-oss


def test_unknown_names():
    assert ChatFormat.for_model(model(parser="glm-4.7")).spec is None  # falls back, as Ollama
    with pytest.raises(CorralError, match='unknown renderer "glm-4.7"'):
        ChatFormat.for_model(model(renderer="glm-4.7"))
    with pytest.raises(InvalidRequestError, match='unknown parser "nope"'):
        check_names("", "nope")
    with pytest.raises(InvalidRequestError, match='unknown renderer "nope"'):
        check_names("nope", "")
    check_names("harmony", "qwen3-coder")


def test_tool_choice_selects_tools():
    other = {"type": "function", "function": {"name": "other"}}
    assert forced.ToolChoice("none").select([WEATHER]) == []
    assert forced.ToolChoice("tool", "other").select([WEATHER, other]) == [other]
    assert forced.ToolChoice("required").select([WEATHER, other]) == [WEATHER, other]
    with pytest.raises(InvalidRequestError, match="not in tools"):
        forced.ToolChoice("tool", "missing").select([WEATHER])
    assert forced.ToolChoice("required").forces and not forced.ToolChoice().forces


@pytest.mark.parametrize("parser,expected", [
    ("qwen3", r'"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " tool-args-0'),
    ("harmony", '"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"'
                " tool-args-0"),
    ("deepseek3", '"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>" '
                  'tool-args-0 "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"'),
])
def test_forced_calls_use_each_formats_markup(parser, expected):
    call = ChatFormat.for_model(model(parser=parser)).forced_call([WEATHER])
    assert call.grammar.startswith("root ::= ( ") and expected in call.grammar
    assert json.loads(call.schemas["tool-args-0"]) == WEATHER["function"]["parameters"]


def test_forced_xml_call_types_required_parameters():
    call = ChatFormat.for_model(model(parser="qwen3-coder")).forced_call([WEATHER])
    assert r'"<tool_call>\n<function=get_weather>\n" "<parameter=city>\n" tool-value-0-0' \
        in call.grammar
    assert "tool-value-0-0 ::= [^<\\n]{1,256}" in call.grammar
    assert call.schemas == {}  # days and metric are optional; city is text


def test_forced_calls_through_templates_follow_their_tag():
    go = model(template=GO_TOOLS_TEMPLATE)
    tagged = ChatFormat.for_model(go).forced_call([WEATHER]).grammar
    assert tagged.startswith(r'root ::= ( "<tool_call>\n{\"name\": ') and r'"}\n</tool_call>"' \
        in tagged
    bare = ChatFormat.for_model(model(template="{{ .Prompt }}")).forced_call([WEATHER]).grammar
    assert bare.startswith(r'root ::= ( "{\"name\": \"get_weather\"')
    python_tag = model(template="{{ range .Messages }}{{ if .ToolCalls }}<|python_tag|>"
                                "{{ range .ToolCalls }}{{ .Function.Name }}{{ end }}{{ end }}"
                                "{{ end }}{{ .Tools }}")
    grammar = ChatFormat.for_model(python_tag).forced_call([WEATHER]).grammar
    assert grammar.startswith(r'root ::= ( "<|python_tag|>{\"name\": ') and "</|" not in grammar
    with pytest.raises(InvalidRequestError, match="reads no tool calls"):
        ChatFormat.for_model(model(parser="passthrough")).forced_call([WEATHER])


def test_literals_escape_for_gbnf():
    assert forced.literal('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
