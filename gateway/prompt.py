"""Prompt assembly: the message list of a request, rendered the way the model expects.

The template is chosen like Ollama's: the request's ``template`` (generate only), else the
model's Modelfile ``TEMPLATE`` (Go ``text/template``, ``gateway.gotemplate``), else the GGUF's
Jinja ``tokenizer.chat_template`` (rendered as llama.cpp and Hugging Face do: sandboxed Jinja,
``trim_blocks``/``lstrip_blocks``, ``add_generation_prompt``), else Ollama's default
``{{ .Prompt }}``. ``PromptTemplate`` also says what the template makes the model capable of
(tools, insert, thinking) and how to read tool calls and thinking out of the output.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.gotemplate import TemplateError
from gateway.gotemplate.ollama import OllamaTemplate, Values
from services.errors import CorralError, InvalidRequestError

Message = dict[str, Any]
DEFAULT_TEMPLATE = "{{ .Prompt }}"
THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass(frozen=True)
class Think:
    """A request's ``think``: None (unset), a bool or a level string."""

    value: bool | str | None = None

    @property
    def is_set(self) -> bool:
        return self.value is not None

    @property
    def enabled(self) -> bool:
        return self.value is True or self.value in THINK_LEVELS

    @property
    def level(self) -> str:
        """Ollama's ``ThinkLevel``: the level string, ``medium`` for plain ``true``, else ""."""
        if isinstance(self.value, str):
            return self.value
        return "medium" if self.value is True else ""


class PromptTemplate:
    """One model's template (Go or Jinja) and what it implies."""

    def __init__(self, *, go: OllamaTemplate | None = None, jinja: str = "",
                 bos_token: str = "", eos_token: str = "") -> None:
        self.go = go
        self.jinja = jinja
        self.bos_token = bos_token
        self.eos_token = eos_token

    @classmethod
    def for_model(cls, model: Any, override: str = "") -> PromptTemplate:
        """The template for a resolved model; ``override`` is a request's ``template``."""
        if override:
            return cls(go=parse_go(override, from_request=True))
        if model.template:
            return cls(go=parse_go(model.template, from_request=False))
        if model.chat_template:
            return cls(jinja=model.chat_template, bos_token=model.bos_token,
                       eos_token=model.eos_token)
        return cls(go=parse_go(DEFAULT_TEMPLATE, from_request=False))

    # -- capabilities -------------------------------------------------------------------------

    @property
    def supports_tools(self) -> bool:
        if self.go is not None:
            return self.go.uses_tools
        return "tools" in self.jinja or "tool_call" in self.jinja

    @property
    def supports_insert(self) -> bool:
        return self.go is not None and self.go.uses_suffix

    @property
    def supports_thinking(self) -> bool:
        return self.thinking_tags() != ("", "")

    @property
    def capabilities(self) -> list[str]:
        """What the template makes the model able to do, in Ollama's order. The one rule: both
        ``/api/show`` and the checks of generate/chat read it from here."""
        return [name for name, present in (("tools", self.supports_tools),
                                           ("insert", self.supports_insert),
                                           ("thinking", self.supports_thinking)) if present]

    @functools.cached_property
    def _tags(self) -> tuple[str, str]:
        if self.go is not None:
            # Ollama's rule (thinking.InferTags): the text around .Thinking inside a range over
            # .Messages gives both tags; a template that only switches on .Think does not think.
            tags = self.go.thinking_tags()
            return tags if tags[0] and tags[1] else ("", "")
        source = self.jinja
        if ("<think>" in source and "</think>" in source) or "enable_thinking" in source or (
                "content.split('</think>')" in source or 'content.split("</think>")' in source):
            return "<think>", "</think>"
        return "", ""

    def thinking_tags(self) -> tuple[str, str]:
        """Opening and closing thinking tags, ``("", "")`` for a model that does not think."""
        return self._tags

    def tool_call_tag(self) -> str:
        """The text a tool call starts with in the output (``{`` for bare JSON)."""
        if self.go is not None:
            return self.go.tool_call_tag()
        return "<tool_call>" if "<tool_call>" in self.jinja else "{"

    # -- rendering ----------------------------------------------------------------------------

    def render(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
               think: Think = Think()) -> str:
        """The prompt for a conversation (the model answers as the assistant)."""
        if self.go is not None:
            return self._go(Values(messages=messages, tools=tools, think=think.enabled,
                                   think_level=think.level, is_think_set=think.is_set))
        return render_chat_template(self.jinja, messages, tools=tools, think=think,
                                    bos_token=self.bos_token, eos_token=self.eos_token)

    def render_suffix(self, prompt: str, suffix: str, *, think: Think = Think()) -> str:
        """Fill-in-the-middle: the template run with ``.Prompt`` and ``.Suffix`` only."""
        return self._go(Values(prompt=prompt, suffix=suffix, think=think.enabled,
                               think_level=think.level, is_think_set=think.is_set))

    def _go(self, values: Values) -> str:
        assert self.go is not None, "only Go templates render suffixes (uses_suffix)"
        try:
            return self.go.execute(values)
        except TemplateError as exc:
            raise InvalidRequestError(exc.message) from exc


@functools.lru_cache(maxsize=32)
def _parse_go_cached(source: str) -> OllamaTemplate:
    return OllamaTemplate(source)


def parse_go(source: str, *, from_request: bool) -> OllamaTemplate:
    """A parsed Go template; a broken one is the client's 400 or the model's 500."""
    try:
        return _parse_go_cached(source)
    except TemplateError as exc:
        raise (InvalidRequestError if from_request else CorralError)(exc.message) from exc


# -- Jinja chat templates ----------------------------------------------------------------------

def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False,
            separators: Any = None, sort_keys: bool = False) -> str:
    # Hugging Face's tojson: plain json.dumps, without Jinja's HTML escaping of <>&'.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return dt.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def compile_template(source: str) -> jinja2.Template:
    """A compiled chat template; cached because every request of a model uses the same one."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    return env.from_string(source)


def render_chat_template(source: str, messages: Sequence[Message], *,
                         tools: Sequence[dict[str, Any]] = (),
                         think: Think = Think(), bos_token: str = "", eos_token: str = "",
                         add_generation_prompt: bool = True) -> str:
    """Render ``messages`` with a Jinja chat template; template failures are the request's 400."""
    extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
    if think.is_set:
        extra["enable_thinking"] = think.enabled
    if think.level:  # gpt-oss's template reads the effort (low/medium/high) from this
        extra["reasoning_effort"] = think.level
    try:
        return compile_template(source).render(
            messages=[_jinja_message(m) for m in messages],
            add_generation_prompt=add_generation_prompt, bos_token=bos_token,
            eos_token=eos_token, **extra)
    except jinja2.TemplateError as exc:
        raise InvalidRequestError(f"chat template: {exc}") from exc


def _jinja_message(message: Message) -> Message:
    """Ollama's message as Hugging Face templates read it (``reasoning_content``, ``name``)."""
    out = {k: v for k, v in message.items() if v not in (None, "", [])} | {
        "role": message.get("role", ""), "content": message.get("content", "")}
    if message.get("thinking"):
        out["reasoning_content"] = message["thinking"]
    if message.get("tool_name"):
        out["name"] = message["tool_name"]
    return out


# -- message lists -----------------------------------------------------------------------------

def model_messages(model: Any) -> list[Message]:
    """The Modelfile MESSAGE history of a resolved model."""
    return [{"role": m.role, "content": m.content} for m in model.messages]


def chat_messages(model: Any, messages: Sequence[Message]) -> list[Message]:
    """Request messages behind the model's MESSAGE history, with its SYSTEM when the request's
    first message is not a system message."""
    history = model_messages(model) + list(messages)
    if model.system and (not messages or messages[0].get("role") != "system"):
        history.insert(0, {"role": "system", "content": model.system})
    return history


def generate_messages(model: Any, prompt: str, *, system: str | None, with_history: bool,
                      images: Sequence[str] = ()) -> list[Message]:
    """[system (request's, else model's)] + [MESSAGE history, unless continuing] + [user]."""
    system = system or model.system
    head = [{"role": "system", "content": system}] if system else []
    history = model_messages(model) if with_history else []
    user: Message = {"role": "user", "content": prompt}
    if images:
        user["images"] = list(images)
    return head + history + [user]
