"""A model's chat format: what renders its prompts and what parses its output.

Chosen as Ollama chooses: the config's ``renderer`` renders (else the template does), the
config's ``parser`` splits the output (else the template's thinking and tool-call tags do, in
``gateway.output.OutputParser`` — the template-based implementation of the same interface).
A gpt-oss model whose template speaks harmony gets the ``harmony`` parser without naming it.
Capabilities follow the same choice: a named parser's tools/thinking support, else the
template's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import structlog

from gateway.formats import forced
from gateway.formats.base import Message, ParserContext, StreamParser
from gateway.formats.registry import PARSERS, RENDERERS, ParserSpec
from gateway.output import OutputParser
from gateway.prompt import PromptTemplate, Think
from services.errors import CorralError, InvalidRequestError

log = structlog.get_logger()

HARMONY_FAMILIES = ("gptoss", "gpt-oss")


def uses_harmony(resolved: Any) -> bool:
    """Ollama's heuristic: a gpt-oss model whose template writes harmony's message tags."""
    source = resolved.template or resolved.chat_template
    return (resolved.model.details.family in HARMONY_FAMILIES
            and "<|start|>" in source and "<|end|>" in source)


class ChatFormat:
    """Renders prompts and makes output parsers for one model (and one request template)."""

    def __init__(self, template: PromptTemplate, *, renderer: str = "",
                 parser: str = "") -> None:
        self.template = template
        self.parser_name = parser
        self.renderer = RENDERERS[renderer]() if renderer else None
        self.spec: ParserSpec | None = PARSERS.get(parser) if parser else None

    @classmethod
    def for_model(cls, resolved: Any, override: str = "") -> ChatFormat:
        """The format of a resolved model; ``override`` is a generate request's template."""
        template = PromptTemplate.for_model(resolved, override)
        parser = resolved.parser or ("harmony" if uses_harmony(resolved) else "")
        if parser and parser not in PARSERS:  # as Ollama: an unknown parser means the template
            log.warning("unknown_parser", parser=parser, model=resolved.model.name)
            parser = ""
        renderer = resolved.renderer
        if renderer and renderer not in RENDERERS:
            raise CorralError(f'unknown renderer "{renderer}" for model {resolved.model.name}')
        return cls(template, renderer=renderer, parser=parser)

    # -- capabilities (the interface gateway.generation reads from a template) -----------------

    @property
    def supports_tools(self) -> bool:
        return self.spec.tools if self.spec else self.template.supports_tools

    @property
    def supports_thinking(self) -> bool:
        return self.spec.thinking if self.spec else self.template.supports_thinking

    @property
    def supports_insert(self) -> bool:
        return self.template.supports_insert

    # -- rendering ------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
               think: Think = Think()) -> str:
        if self.parser_name == "harmony" and think.value == "max":
            think = Think("high")  # harmony knows low, medium and high
        if self.renderer is not None:
            return self.renderer.render(messages, tools=tools, think=think)
        return self.template.render(messages, tools=tools, think=think)

    def render_suffix(self, prompt: str, suffix: str, *, think: Think = Think()) -> str:
        return self.template.render_suffix(prompt, suffix, think=think)

    # -- parsing --------------------------------------------------------------------------------

    def parser(self, think: Think, prompt: str, *, tools: Sequence[dict[str, Any]] = (),
               last_message: Message | None = None, raw: bool = False) -> StreamParser:
        """A fresh parser for one reply to ``prompt`` (a ``raw`` prompt skips the named
        parser, as in Ollama: the model's own format was not used)."""
        if self.spec is not None and not raw:
            return self.spec.make(ParserContext(tools=tools, think=think,
                                                last_message=last_message))
        return template_parser(self.template, think, prompt, tools)

    def forced_call(self, tools: Sequence[dict[str, Any]]) -> forced.ForcedCall:
        """The grammar that makes the model call one of ``tools`` in this format's markup."""
        if self.spec is not None:
            if self.spec.forced_call is None:
                raise InvalidRequestError(f'the "{self.parser_name}" parser reads no tool calls')
            return self.spec.forced_call(tools)
        tag = self.template.tool_call_tag()
        if tag in ("{", ""):
            return forced.json_calls()(tools)
        if tag == "[":
            return forced.json_calls("[", "]")(tools)
        if re.fullmatch(r"<[A-Za-z_][\w-]*>", tag):  # an XML-like tag is closed again
            return forced.json_calls(tag + "\n", "\n" + tag.replace("<", "</", 1))(tools)
        return forced.json_calls(tag)(tools)  # [TOOL_CALLS], <|python_tag|>...


def template_parser(template: PromptTemplate, think: Think, prompt: str,
                    tools: Sequence[dict[str, Any]] = ()) -> OutputParser:
    """The template-driven parser: its thinking tags (when thinking) and its tool-call tag."""
    opening, closing = template.thinking_tags()
    tags = (opening, closing) if think.enabled and opening and closing else None
    prefilled = bool(tags) and prompt.rstrip().endswith(opening)
    return OutputParser(thinking_tags=tags, prefilled=prefilled,
                        tool_tag=template.tool_call_tag() if tools else "", tools=tools)
