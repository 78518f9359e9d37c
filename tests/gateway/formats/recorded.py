"""Model outputs in each family's own format, as the models write them (markup exactly as
their chat formats define it), with what the parser must make of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.prompt import Think

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"},
        "metric": {"type": "boolean"}}}}}
DASHED = {"type": "function", "function": {"name": "get-weather.v2", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
PARIS = {"city": "Paris"}

GO_TOOLS_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ if .Thinking }}<think>{{ .Thinking }}"
    "</think>{{ end }}{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{\"name\": "
    "\"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}{{ end }}</tool_call>"
    "{{ else }}{{ .Content }}{{ end }}<|im_end|>\n{{ end }}{{ if .Tools }}{{ range .Tools }}"
    "{{ . }}{{ end }}{{ end }}<|im_start|>assistant\n")


@dataclass(frozen=True)
class Case:
    id: str
    parser: str  # a registry name, or "template" for GO_TOOLS_TEMPLATE's tags
    output: str
    content: str = ""
    thinking: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)
    think: Think = Think(True)
    tools: tuple[dict, ...] = (WEATHER,)
    last_message: dict | None = None


CASES = [
    Case("harmony-final", "harmony",
         "<|channel|>analysis<|message|>User says hi. Respond politely.<|end|><|start|>assistant"
         "<|channel|>final<|message|>Hello! How can I help you today?",
         content="Hello! How can I help you today?", thinking="User says hi. Respond politely."),
    Case("harmony-tool-call", "harmony",
         "<|channel|>analysis<|message|>Need the weather; call get_weather.<|end|>"
         "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
         '<|message|>{"city":"Paris","days":3}',
         thinking="Need the weather; call get_weather.",
         calls=[("get_weather", {"city": "Paris", "days": 3})]),
    Case("harmony-preamble-and-call-tag", "harmony",
         "<|channel|>commentary<|message|>Checking the forecast.<|end|><|start|>assistant"
         '<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"city":'
         '"Paris"}<|call|>',
         content="Checking the forecast.", calls=[("get_weather", PARIS)]),
    Case("harmony-renamed-tool", "harmony",
         "<|channel|>commentary to=functions.get_weather_v2 <|constrain|>json<|message|>"
         '{"city":"Paris"}', calls=[("get-weather.v2", PARIS)], tools=(DASHED,)),
    Case("harmony-think-false-hides-analysis", "harmony",
         "<|channel|>analysis<|message|>brief<|end|><|start|>assistant<|channel|>final"
         "<|message|>4", content="4", think=Think(False)),
    Case("harmony-prefilled-final", "harmony", " and the rest.", content=" and the rest.",
         last_message={"role": "assistant", "content": "The start"}),
    Case("qwen3-thinking", "qwen3-thinking",
         "<think>\nOkay, the user greets me.\n</think>\n\nHello! How can I help?",
         content="Hello! How can I help?", thinking="Okay, the user greets me."),
    Case("qwen3-thinking-opened-by-prompt", "qwen3-thinking",
         "The user wants Paris weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
         "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
         thinking="The user wants Paris weather.", calls=[("get_weather", PARIS)]),
    Case("qwen3-call-ends-thinking", "qwen3-thinking",
         "<think>\nI should call it.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
         "{\"city\": \"Paris\"}}\n</tool_call>",
         thinking="I should call it.", calls=[("get_weather", PARIS)]),
    Case("qwen3-two-calls", "qwen3",
         "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
         "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
         "{\"city\": \"Oslo\"}}\n</tool_call>",
         content="Let me check both.",
         calls=[("get_weather", PARIS), ("get_weather", {"city": "Oslo"})]),
    Case("qwen3-plain", "qwen3", "1 < 2 and <b>bold</b> stay text.",
         content="1 < 2 and <b>bold</b> stay text.", think=Think(False)),
    Case("qwen3-coder-call", "qwen3-coder",
         "I'll check the weather.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\n"
         "Paris\n</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=metric>\ntrue\n"
         "</parameter>\n</function>\n</tool_call>",
         content="I'll check the weather.",
         calls=[("get_weather", {"city": "Paris", "days": 3, "metric": True})]),
    Case("qwen3-coder-multiline-value", "qwen3-coder",
         "<tool_call>\n<function=get_weather>\n<parameter=city>\nSan\nFrancisco\n</parameter>\n"
         "</function>\n</tool_call>", calls=[("get_weather", {"city": "San\nFrancisco"})]),
    Case("deepseek-thinking-and-call", "deepseek3",
         "The user wants the weather.</think>I'll look it up.<｜tool▁calls▁begin｜>"
         "<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜>"
         "<｜tool▁calls▁end｜>",
         content="I'll look it up.", thinking="The user wants the weather.",
         calls=[("get_weather", PARIS)]),
    Case("deepseek-no-thinking", "deepseek3", "Hello there, friend!",
         content="Hello there, friend!", think=Think(False)),
    Case("template-think-and-call", "template",
         "<think>Checking.</think>Let me look.<tool_call>{\"name\": \"get_weather\", "
         "\"arguments\": {\"city\": \"Paris\"}}</tool_call>",
         content="Let me look.", thinking="Checking.", calls=[("get_weather", PARIS)]),
    Case("template-plain", "template", "Just <text> here.", content="Just <text> here.",
         think=Think(False), tools=()),
]
