"""Prompt assembly (Go and Jinja templates), output parsing, context fitting, request fields."""

from __future__ import annotations

import json
import threading

import pytest

from gateway import fitting, inference_fields, prompt
from gateway.output import OutputParser
from gateway.prompt import PromptTemplate, Think
from gateway.streaming import utc_timestamp
from services.gocodec import encode_json
from gateway.thinking import ThinkingParser
from gateway.tools import ToolCallParser, find_arguments, tool_call_id
from gateway.validation import decode_error
from services.errors import CorralError, InvalidRequestError
from tests.gateway.fakes import SMOLLM2_TEMPLATE, resolved_model
from tests.gateway.templates import LLAMA31, QWEN3_THINKING, WEATHER

def go_model(template: str, **kwargs):
    model = resolved_model(chat_template="", **kwargs)
    model.template = template
    return model


# -- template choice and rendering --------------------------------------------------------------

def test_jinja_chat_template_with_its_default_system():
    model = resolved_model()
    text = PromptTemplate.for_model(model).render(
        prompt.chat_messages(model, [{"role": "user", "content": "Hi"}]))
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                    "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_go_template_wins_over_jinja_and_request_template_over_both():
    model = resolved_model(chat_template=SMOLLM2_TEMPLATE)
    model.template = "M:{{ .Prompt }}"
    user = [{"role": "user", "content": "x"}]
    assert PromptTemplate.for_model(model).render(user) == "M:x"
    assert PromptTemplate.for_model(model, "R:{{ .Prompt }}").render(user) == "R:x"


def test_model_without_any_template_uses_ollamas_default():
    model = resolved_model(chat_template="", system="dropped by {{ .Prompt }}")
    messages = prompt.generate_messages(model, "Once upon", system="", with_history=True)
    assert PromptTemplate.for_model(model).render(messages) == "Once upon"


def test_template_errors():
    with pytest.raises(InvalidRequestError, match="unclosed action"):
        PromptTemplate.for_model(resolved_model(), "{{ .Prompt ")
    with pytest.raises(CorralError) as info:
        PromptTemplate.for_model(go_model("{{ nope }}"))
    assert info.value.http_status == 500 and "function \"nope\" not defined" in info.value.message
    with pytest.raises(InvalidRequestError, match="chat template: nope"):
        prompt.render_chat_template("{{ raise_exception('nope') }}", [])
    with pytest.raises(InvalidRequestError, match="can't evaluate field"):
        PromptTemplate.for_model(go_model("{{ range .Messages }}{{ .Nope }}{{ end }}")).render(
            [{"role": "user", "content": "x"}])


def test_system_precedence_and_history():
    model = resolved_model(system="Model system")
    model.messages.add(role="user", content="Earlier")
    assert prompt.generate_messages(model, "p", system="Mine", with_history=False) == [
        {"role": "system", "content": "Mine"}, {"role": "user", "content": "p"}]
    assert [m["content"] for m in prompt.generate_messages(model, "p", system="",
                                                           with_history=True)] == \
        ["Model system", "Earlier", "p"]
    assert [m["role"] for m in prompt.chat_messages(model, [{"role": "user", "content": "Now"}])] \
        == ["system", "user", "user"]
    own = prompt.chat_messages(model, [{"role": "system", "content": "Mine"}])
    assert [m["content"] for m in own] == ["Earlier", "Mine"]


def test_tools_render_into_a_go_template_and_tool_history_round_trips():
    template = PromptTemplate.for_model(go_model(LLAMA31))
    assert template.supports_tools and template.tool_call_tag() == "{"
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
               {"role": "tool", "content": "22C", "tool_name": "get_weather"}]
    asking = template.render(history[:1], tools=WEATHER)
    assert '\n{"type":"function","function":{"name":"get_weather","description":"Current weather",' \
        '"parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string"}}}' \
        '}}\n' in asking
    text = template.render(history, tools=WEATHER)
    assert '{"name": "get_weather", "parameters": {"city":"Paris"}}' in text
    assert text.endswith("ipython<|end_header_id|>\n\n22C<|eot_id|><|start_header_id|>assistant"
                         "<|end_header_id|>\n\n")


def test_capabilities_of_templates():
    smol = PromptTemplate.for_model(resolved_model())
    assert not (smol.supports_tools or smol.supports_insert or smol.supports_thinking)
    jinja = PromptTemplate.for_model(resolved_model(
        chat_template="{% if tools %}{{ tools|tojson }}{% endif %}<think></think>"))
    assert jinja.supports_tools and jinja.thinking_tags() == ("<think>", "</think>")
    assert PromptTemplate.for_model(go_model("{{ .Prompt }}{{ .Suffix }}")).supports_insert
    assert PromptTemplate.for_model(go_model(QWEN3_THINKING)).thinking_tags() == \
        ("<think>", "</think>")


def test_think_values_reach_both_template_kinds():
    go = PromptTemplate.for_model(go_model(QWEN3_THINKING))
    user = [{"role": "user", "content": "q"}]
    assert go.render(user, think=Think(False)).endswith("<think>\n\n</think>\n\n")
    assert go.render(user, think=Think("high")).endswith("assistant\n")
    jinja = "{% if enable_thinking is defined and not enable_thinking %}NOTHINK{% endif %}"
    assert prompt.render_chat_template(jinja, user, think=Think(False)) == "NOTHINK"
    assert prompt.render_chat_template(jinja, user, think=Think()) == ""
    assert Think(True).level == "medium" and Think("low").level == "low" and not Think().is_set


def test_jinja_receives_tools_and_reasoning():
    source = "{{ tools[0].function.name }}|{% for m in messages %}{{ m.reasoning_content }}" \
             "{{ m.name }}{% endfor %}"
    messages = [{"role": "assistant", "content": "", "thinking": "hmm"},
                {"role": "tool", "content": "x", "tool_name": "get_weather"}]
    assert prompt.render_chat_template(source, messages, tools=WEATHER) == \
        "get_weather|hmmget_weather"


# -- thinking ---------------------------------------------------------------------------------

def feed_all(parser, chunks):
    thinking, content = "", ""
    for chunk in chunks:
        t, c = parser.add(chunk)
        thinking, content = thinking + t, content + c
    t, c = parser.flush()
    return thinking + t, content + c


@pytest.mark.parametrize("chunks,thinking,content", [
    (["<think>", "plan", "ning</think>", "\n\nAnswer"], "planning", "Answer"),
    (["  <thi", "nk>\n a</th", "ink> b"], "a", "b"),
    (["No thinking here"], "", "No thinking here"),
    (["<think>unfinished"], "unfinished", ""),
    (["<thi"], "", "<thi"),
    (["<think>a</think>", "   ", "  x <think>y"], "a", "x <think>y"),
])
def test_thinking_parser(chunks, thinking, content):
    assert feed_all(ThinkingParser(), chunks) == (thinking, content)


def test_thinking_parser_never_leaks_a_split_closing_tag():
    parser = ThinkingParser()
    assert parser.add("<think>abc</") == ("abc", "")
    assert parser.add("thi") == ("", "")
    assert parser.add("nk>done") == ("", "done")


# -- tool calls --------------------------------------------------------------------------------

def parse_tools(tag, chunks, tools=WEATHER):
    parser = ToolCallParser(tag, tools)
    calls, content = [], ""
    for chunk in chunks:
        found, text = parser.add(chunk)
        calls += found
        content += text
    return calls, content + parser.leftover()


@pytest.mark.parametrize("tag,chunks", [
    ("{", ['{"name": "get_weather", ', '"arguments": {"city": "Paris"}}']),
    ("{", ['  {"name":"get_weather","parameters":{"city":"Paris"}}']),
    ("{", ['{"name":"get_weather","arguments":"{\\"city\\": \\"Paris\\"}"}']),
    ("<tool_call>", ["Sure.<tool_", 'call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
                                    "\n</tool_call>"]),
    ("[TOOL_CALLS]", ['[TOOL_CALLS] [{"get_weather": {"city": "Paris"}}]']),
])
def test_tool_calls_are_parsed(tag, chunks):
    calls, content = parse_tools(tag, chunks)
    assert calls == [{"function": {"index": 0, "name": "get_weather",
                                   "arguments": {"city": "Paris"}}}]
    assert content in ("", "Sure.")


def test_several_calls_get_increasing_indexes():
    calls, _ = parse_tools("<tool_call>", [
        '<tool_call>{"name":"get_weather","arguments":{"city":"A"}}</tool_call>'
        '<tool_call>{"name":"get_weather","arguments":{"city":"B"}}</tool_call>'])
    assert [(c["function"]["index"], c["function"]["arguments"]["city"]) for c in calls] == \
        [(0, "A"), (1, "B")]


def test_plain_text_and_unrelated_json_stay_content():
    assert parse_tools("{", ["The weather is nice."]) == ([], "The weather is nice.")
    assert parse_tools("{", ['{"answer": 42}']) == ([], '{"answer": 42}')
    calls, content = parse_tools("{", ['{"name": "get_we'])
    assert calls == [] and content == '{"name": "get_we'


def test_tool_call_ids_and_argument_search():
    ident = tool_call_id()
    assert ident.startswith("call_") and len(ident) == 13 and ident[5:].isalnum()
    assert find_arguments("f", 'x {"bad" } {"f": {"a": 1}}') == ({"a": 1}, 26)
    assert find_arguments("f", '{"name": "f"}')[0] == {}


def test_output_parser_chains_thinking_then_tools():
    parser = OutputParser(thinking_tags=("<think>", "</think>"), prefilled=True,
                          tool_tag="{", tools=WEATHER)
    first = parser.feed("let me check</think>")
    second = parser.feed('{"name":"get_weather","arguments":{"city":"Oslo"}}')
    assert first.thinking == "let me check" and not first.content
    assert second.tool_calls[0]["function"]["name"] == "get_weather"
    assert second.tool_calls[0]["id"].startswith("call_") and not parser.finish()


# -- fitting the context window ------------------------------------------------------------------

async def word_tokenize(text: str, add_special: bool) -> list[int]:
    return [1] * add_special + [7] * len(text.split())


async def test_fit_messages_drops_oldest_but_keeps_system_and_last():
    messages = [{"role": "system", "content": "sys"}] + [
        {"role": "user", "content": "word " * 30} for _ in range(4)] + [
        {"role": "user", "content": "last"}]

    def render(selected):
        return " ".join(m["content"] for m in selected)

    text, dropped = await fitting.fit_messages(messages, render, word_tokenize, 70)
    assert dropped == 2 and text.startswith("sys word") and text.endswith("last")
    text, dropped = await fitting.fit_messages(messages, render, word_tokenize, 5)
    assert dropped == 4 and text == "sys last"


async def test_a_long_history_is_fitted_in_a_few_renders_off_the_event_loop():
    messages = [{"role": "user", "content": f"w{i}"} for i in range(10_000)]
    calls, threads = [], set()

    def render(selected):
        calls.append(len(selected))
        threads.add(threading.current_thread() is threading.main_thread())
        return " ".join(m["content"] for m in selected)

    text, dropped = await fitting.fit_messages(messages, render, word_tokenize, 100)
    assert dropped == 9901 and text.startswith("w9901 ") and text.endswith("w9999")  # +BOS
    assert len(calls) <= 16 and threads == {False}  # a binary search, in worker threads


async def test_fit_tokens_keeps_num_keep_and_the_latest_tokens():
    long_text = " ".join(f"w{i}" for i in range(100))
    fitted = await fitting.fit_tokens(long_text, (), word_tokenize, limit=20, num_keep=4,
                                      truncate=True)
    assert fitted.text == "" and len(fitted.context) == 5 + 7 and fitted.dropped_tokens == 101 - 12
    assert fitted.context[0] == 1  # BOS kept on top of num_keep
    short = await fitting.fit_tokens("hi", [5, 6], word_tokenize, limit=20, num_keep=4,
                                     truncate=True)
    assert (short.text, short.context) == ("hi", [5, 6])
    for truncate, shift in ((False, True), (True, False)):  # Ollama >= 0.30.9
        with pytest.raises(InvalidRequestError) as excinfo:
            await fitting.fit_tokens(long_text, (), word_tokenize, limit=20, num_keep=4,
                                     truncate=truncate, shift=shift)
        assert excinfo.value.message == fitting.PROMPT_TOO_LONG
        assert excinfo.value.message.startswith("the prompt is longer than the context length")


# -- request fields --------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (None, ""), ("", ""), ("json", '{"type":"object"}'),
    ({"type": "object", "properties": {"a": {"type": "string"}}},
     '{"type":"object","properties":{"a":{"type":"string"}}}'),
])
def test_format_values(value, expected):
    assert inference_fields.parse_format(value) == expected


@pytest.mark.parametrize("value,message", [
    ("xml", 'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'),
    (5, 'invalid format: "5"; expected "json" or a valid JSON Schema object'),
    ([1], 'invalid format: "[1]"; expected "json" or a valid JSON Schema object'),
])
def test_format_errors(value, message):
    with pytest.raises(InvalidRequestError) as info:
        inference_fields.parse_format(value)
    assert info.value.message == message


def test_think_and_images_fields():
    assert inference_fields.parse_think("max") == Think("max")
    with pytest.raises(InvalidRequestError, match='invalid think value: "x"'):
        inference_fields.parse_think("x")
    with pytest.raises(InvalidRequestError, match="think must be a boolean or string"):
        inference_fields.parse_think(1)
    assert inference_fields.parse_images(["aGk=", "aGkh"], "w") == ["aGk=", "aGkh"]
    for bad, at in (("data:image/png;base64,aGk=", 4), ("aGk", 0), ("a*==", 1)):
        with pytest.raises(InvalidRequestError, match=f"illegal base64 data at input byte {at}"):
            inference_fields.check_base64(bad)


def test_message_fields_are_checked_like_go():
    assert inference_fields.parse_message({"role": "USER", "content": None}) == \
        {"role": "user", "content": ""}
    with pytest.raises(InvalidRequestError, match="ChatRequest.messages.content of type string"):
        inference_fields.parse_message({"role": "user", "content": 5})
    with pytest.raises(InvalidRequestError, match="function.arguments"):
        inference_fields.parse_message({"role": "assistant", "tool_calls": [
            {"function": {"name": "f", "arguments": "{}"}}]})


# -- wire helpers ------------------------------------------------------------------------------

def test_json_is_go_shaped():
    assert encode_json({"a": "<&>", "b": "é"}) == '{"a":"\\u003c\\u0026\\u003e","b":"é"}'.encode()
    assert json.loads(encode_json({"a": "<&>"})) == {"a": "<&>"}


def test_utc_timestamp_trims_nanoseconds():
    assert utc_timestamp(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert utc_timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize("doc,message", [
    ("x", "invalid character 'x' looking for beginning of value"),
    ('{"a" 1}', "invalid character '1' after object key"),
    ('{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
    ("[1 2]", "invalid character '2' after array element"),
    ("{} x", "invalid character 'x' after top-level value"),
    ('{"a":', "unexpected EOF"),
])
def test_decoder_messages(doc, message):
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(doc)
    assert decode_error(info.value) == message
