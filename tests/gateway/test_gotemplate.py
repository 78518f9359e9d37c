"""The Go text/template engine and Ollama's template layer.

``data/ollama_templates.json`` holds ten of Ollama's bundled templates (``template/*.gotmpl``)
with the outputs Ollama's own test suite expects for three conversations
(``template/testdata``); rendering them byte-for-byte is the conformance check.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from gateway.gotemplate import GoMap, GoStruct, Template, TemplateError
from gateway.gotemplate.ollama import (OllamaTemplate, Values, collate, cut_after_response,
                                       infer_thinking_tags, tool_call_tag)

DATA = json.loads((Path(__file__).parent / "data" / "ollama_templates.json").read_text())
HELLO = [{"role": "user", "content": "Hello, how are you?"}]
TURNS = HELLO + [{"role": "assistant", "content": "I'm doing great. How can I help you today?"},
                 {"role": "user", "content": "I'd like to show off how chat templating works!"}]
CONVERSATIONS = {"user": HELLO, "user-assistant-user": TURNS,
                 "system-user-assistant-user":
                     [{"role": "system", "content": "You are a helpful assistant."}] + TURNS}


def render(source: str, data: object = None) -> str:
    return Template(source).execute(data if data is not None else {})


@pytest.mark.parametrize("name,case", [(n, c) for n in DATA for c in CONVERSATIONS])
def test_ollama_bundled_templates_render_exactly(name, case):
    got = OllamaTemplate(DATA[name]["template"]).execute(Values(messages=CONVERSATIONS[case]))
    if name in ("llama2-chat", "mistral-instruct") and got.endswith(" "):
        got = got[:-1]  # Ollama's test strips the same trailing space
    assert got == DATA[name]["expected"][case]


# -- the language ------------------------------------------------------------------------------

@pytest.mark.parametrize("source,data,expected", [
    ("a {{- ' '}} b", {}, "a32 b"),  # a char literal is a number
    ("x  {{- .A -}}  \n y", {"A": 1}, "x1y"),
    ("{{-3}}", {}, "-3"),
    ("{{/* comment */}}a{{- /* trimmed */ -}}  b", {}, "ab"),
    ("{{ .A.B }}", {"A": {"B": "deep"}}, "deep"),
    ("{{ .Missing }}|{{ if .Missing }}y{{ else }}n{{ end }}", {}, "<no value>|n"),
    ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", {}, "2"),
    ("{{ $ }}", "root", "root"),
    ("{{ if 0 }}a{{ else if \"\" }}b{{ else if .L }}c{{ else }}d{{ end }}", {"L": [1]}, "c"),
    ("{{ range $i, $v := .L }}{{ $i }}={{ $v }} {{ end }}", {"L": ["a", "b"]}, "0=a 1=b "),
    ("{{ range .L }}{{ . }}{{ else }}empty{{ end }}", {"L": []}, "empty"),
    ("{{ range $k, $v := .M }}{{ $k }}:{{ $v }};{{ end }}", {"M": {"b": 2, "a": 1}}, "a:1;b:2;"),
    ("{{ range 3 }}{{ . }}{{ end }}", {}, "012"),
    ("{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}"
     "{{ . }}{{ end }}", {"L": [1, 2, 3, 4, 5]}, "13"),
    ("{{ with .A }}{{ . }}{{ else with .B }}b{{ else }}none{{ end }}", {"A": "", "B": 1}, "b"),
    ("{{ with $x := .A }}{{ $x }}{{ end }}", {"A": "w"}, "w"),
    ('{{ define "T" }}[{{ . }}]{{ end }}{{ template "T" .A }}', {"A": 7}, "[7]"),
    ('{{ block "B" . }}<{{ .A }}>{{ end }}', {"A": 1}, "<1>"),
    ("{{ .A | printf \"%s-%s\" \"x\" }}", {"A": "y"}, "x-y"),
    ("{{ (index .L 1).N }}", {"L": [{}, {"N": "second"}]}, "second"),
    ("{{ len .S }} {{ len .L }} {{ index .S 0 }} {{ slice .S 1 3 }}", {"S": "héllo", "L": [1]},
     "6 1 104 é"),
    ("{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 3 }} {{ not .E }}", {"E": []},
     "0 2  3 true"),
    ("{{ eq .A \"x\" \"y\" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ ge \"b\" \"a\" }}", {"A": "y"},
     "true true true true"),
    ("{{ print 1 2 \"a\" 3 }}|{{ println 1 \"a\" }}", {}, "1 2a3|1 a\n"),
    ("{{ printf \"%d|%5.2f|%-3s|%q|%v|%x|%t|%%\" 7 3.14159 \"a\" \"q\\\"\" .L 255 true }}",
     {"L": [1, "b"]}, '7| 3.14|a  |"q\\""|[1 b]|ff|true|%'),
    ("{{ printf \"%s\" }}{{ printf \"x\" 1 }}", {}, "%!s(MISSING)x%!(EXTRA int=1)"),
    ("{{ 1.5 }} {{ 1e6 }} {{ 0x1F }} {{ 1_000 }} {{ .F }} {{ true }} {{ print nil }}",
     {"F": 2.0}, "1.5 1e+06 31 1000 2 true <nil>"),
    ("{{ .M }} {{ .L }}", {"M": {"b": 1, "a": "x"}, "L": [True, None]}, "map[a:x b:1] [true <nil>]"),
    ("{{ json .V }}", {"V": {"z": 1.0, "a": [0.5, "<&>", None, 1e-7, 1e21]}},
     '{"a":[0.5,"\\u003c\\u0026\\u003e",null,1e-7,1e+21],"z":1}'),
    ("{{ html .S }} {{ urlquery .S }}", {"S": "<a b='c'>"},
     "&lt;a b=&#39;c&#39;&gt; %3Ca+b%3D%27c%27%3E"),
])
def test_language(source, data, expected):
    assert render(source, data) == expected


def test_dates():
    today = dt.date.today()
    assert render("{{ currentDate }}|{{ yesterdayDate }}") == \
        f"{today.isoformat()}|{(today - dt.timedelta(days=1)).isoformat()}"


def test_variables_are_scoped_to_their_control_structure():
    assert render("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}") == "21"
    assert render("{{ $x := 1 }}{{ range .L }}{{ $x = . }}{{ end }}{{ $x }}", {"L": [5, 6]}) == "6"
    with pytest.raises(TemplateError, match='undefined variable "\\$y"'):
        Template("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}")


@pytest.mark.parametrize("source,message", [
    ("{{ .Prompt ", "unclosed action"),
    ("{{ nope }}", 'function "nope" not defined'),
    ("{{ $x }}", 'undefined variable "$x"'),
    ("{{ if .A }}", "unexpected EOF"),
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ break }}", "{{break}} outside {{range}}"),
    ("{{ \"unterminated }}", "unterminated quoted string"),
    ("{{ ) }}", "unexpected right paren"),
    ("{{ (1 }}", "unclosed left paren"),
    ("{{ 1 | }}", "missing command"),
    ("a\n{{ .A ! }}", "template: :2:"),
    ("{{ $a, $b := .L }}", "too many declarations"),
    ("{{/* open }}", "unclosed comment"),
    ("{{ /* c */ }}", "unexpected '/' in command"),
])
def test_parse_errors(source, message):
    with pytest.raises(TemplateError) as info:
        Template(source)
    assert message in info.value.message and info.value.message.startswith("template: ")


@pytest.mark.parametrize("source,data,message", [
    ("{{ .A.B }}", {"A": "s"}, "can't evaluate field B in type string"),
    ("{{ .A.B }}", {}, "nil pointer evaluating interface {}.B"),
    ("{{ .S.Nope }}", {"S": GoStruct("T", {"Yes": 1})}, "can't evaluate field Nope in type T"),
    ("{{ index .L 5 }}", {"L": [1]}, "error calling index: index out of range: 5"),
    ("{{ len 3 }}", {}, "error calling len: len of type int"),
    ("{{ eq \"a\" 1 }}", {}, "incompatible types for comparison"),
    ("{{ range .S }}{{ end }}", {"S": "abc"}, "range can't iterate over abc"),
    ("{{ .A 1 }}", {"A": 1}, "A has arguments but cannot be invoked as function"),
    ('{{ define "R" }}{{ template "R" . }}{{ end }}{{ template "R" . }}', {},
     "exceeded maximum template depth"),
])
def test_execution_errors(source, data, message):
    with pytest.raises(TemplateError) as info:
        Template(source).execute(data)
    assert message in info.value.message and 'executing ""' in info.value.message


# -- Ollama's layer ----------------------------------------------------------------------------

MISTRAL = [{"role": "user", "content": "Hello friend!"},
           {"role": "assistant", "content": "Hello human!"},
           {"role": "user", "content": "What is your name?"}]


@pytest.mark.parametrize("source", [
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] ",
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}",
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n"
    "{{- if eq .Role \"user\" }}{{ .Content }}[/INST] {{ else if eq .Role \"assistant\" }}"
    "{{ .Content }}[INST] {{ end }}\n{{- end }}",
])
def test_legacy_and_messages_forms_agree(source):
    """Ollama's TestExecuteWithMessages: per-turn legacy rendering equals the messages form."""
    got = OllamaTemplate(source).execute(Values(messages=MISTRAL))
    assert got == "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "


def test_legacy_form_prefills_a_final_assistant_message_and_cuts_after_response():
    template = OllamaTemplate("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n"
                              "{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
                              "{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n")
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"},
                {"role": "assistant", "content": "My name is"}]
    assert template.execute(Values(messages=messages)) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
        "A<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nMy name is")


def test_response_is_appended_when_the_template_names_neither_messages_nor_response():
    template = OllamaTemplate("{{ .System }} {{ .Prompt }}")
    assert template.vars == ["prompt", "system"]
    assert template.execute(Values(messages=[{"role": "user", "content": "p"}])) == " p"
    prefilled = [{"role": "user", "content": "p"}, {"role": "assistant", "content": "So"}]
    assert template.execute(Values(messages=prefilled)) == " pSo"  # via the appended .Response


def test_suffix_mode():
    template = OllamaTemplate("{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n"
                              "{{- else }}{{ .Prompt }}\n{{- end }}")
    assert template.uses_suffix
    assert template.execute(Values(prompt="def add(", suffix="return x")) == \
        "<PRE> def add( <SUF>return x <MID>"
    assert template.execute(Values(messages=[{"role": "user", "content": "hello"}])) == "hello"


def test_collate_merges_same_role_but_not_tool_messages():
    system, merged = collate([{"role": "system", "content": "a"}, {"role": "system", "content": "b"},
                              {"role": "user", "content": "x"}, {"role": "user", "content": "y"},
                              {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}])
    assert system == "a\n\nb"
    assert [m["content"] for m in merged] == ["a\n\nb", "x\n\ny", "1", "2"]


def test_vars_and_template_without_pipeline():
    assert OllamaTemplate("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}").vars == \
        ["content", "messages", "role"]
    assert "tools" in OllamaTemplate("{{ with .Tools }}{{ . }}{{ end }} {{ .Prompt }}").vars
    with pytest.raises(TemplateError, match="undefined template specified"):
        OllamaTemplate('{{define "x"}}{{template "x"}}{{end}}{{template "x"}}')


def test_cut_after_response_keeps_everything_before_it():
    template = Template("a{{ if .X }}b{{ .Response }}c{{ end }}d{{ .Response }}e")
    assert template.execute({"X": True, "Response": "R"}, root=cut_after_response(template.root)) \
        == "abR"


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather <now>",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string", "description": "City"},
                                  "days": {"type": ["integer", "null"]}}}}}]
CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"function": {"index": 0, "name": "get_weather", "arguments": {"unit": "c", "city": "Paris",
                                                                   "n": 1000000}}}]}


def test_tools_and_tool_calls_print_like_ollama():
    template = OllamaTemplate(
        "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}"
        "{{ range $k, $v := .Function.Arguments }} {{ $k }}={{ $v }}{{ end }}{{ end }}{{ end }}¦"
        "{{ range .Tools }}{{ . }}¦{{ .Function.Parameters.Properties }}¦"
        "{{ range $n, $p := .Function.Parameters.Properties }}{{ $n }}:{{ $p.Type }}:"
        "{{ toTypeScriptType $p }};{{ end }}{{ end }}¦{{ json .Tools }}")
    text = template.execute(Values(messages=[CALL], tools=TOOLS))
    calls, tools, props, ts, as_json = text.split("¦")
    assert calls == ('get_weather{"city":"Paris","n":1000000,"unit":"c"} city=Paris n=1e+06 unit=c')
    assert json.loads(tools)["function"]["description"] == "Weather <now>"
    assert "\\u003cnow\\u003e" in tools and tools == as_json[1:-1]
    assert json.loads(props) == {"city": {"type": "string", "description": "City"},
                                 "days": {"type": ["integer", "null"]}}
    assert ts == "city:string:string;days:[integer null]:number | null;"


def test_tool_call_tag_comes_from_the_tool_calls_branch():
    qwen = ("{{ range .Messages }}{{ if .Content }}{{ .Content }}{{ else if .ToolCalls }}"
            "<tool_call>\n{{ range .ToolCalls }}{}{{ end }}</tool_call>{{ end }}{{ end }}")
    llama = ("{{ range .Messages }}{{ if .ToolCalls }}\n{{ range .ToolCalls }}\n{\"name\": "
             "\"{{ .Function.Name }}\"}{{ end }}{{ end }}{{ end }}")
    assert tool_call_tag(Template(qwen).root) == "<tool_call>"
    assert tool_call_tag(Template(llama).root) == "{"
    assert tool_call_tag(Template("{{ .Prompt }}").root) == "{"


@pytest.mark.parametrize("source,tags", [
    ("{{ if .Thinking }}/think{{ end }}{{- range $i, $_ := .Messages }}"
     "{{ if .Thinking }}\n  <think>{{ .Thinking }}</think>\n{{ end }}{{ end }}",
     ("<think>", "</think>")),
    ("{{- range $i, $_ := .Messages }}{{- range $j, $_ := .Other }}"
     "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ end }}{{ end }}", ("", "")),
    ("{{- range .Messages }}{{ if .Thinking }}before {{ .Thinking }} after{{ end }}{{ end }}",
     ("before", "after")),
])
def test_thinking_tags_are_inferred(source, tags):
    assert infer_thinking_tags(Template(source)) == tags


def test_go_map_and_struct_values():
    args = GoMap({"b": 1.0, "a": "x"})
    assert render("{{ . }}", args) == '{"a":"x","b":1}'
    plain = GoStruct("T", {"A": 1, "B": "s", "C": None})
    assert render("{{ . }}|{{ .B }}|{{ if . }}t{{ end }}", plain) == "{1 s <nil>}|s|t"
