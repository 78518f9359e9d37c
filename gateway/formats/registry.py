"""The named renderers and parsers a model's config may choose (Modelfile ``RENDERER`` /
``PARSER``), with Ollama's names.

A parser entry says what it can find (tool calls, thinking) — that becomes the model's
``tools``/``thinking`` capabilities, as in Ollama — and how to force a tool call in its markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.formats import forced
from gateway.formats.base import ParserContext, Piece, Renderer, StreamParser
from gateway.formats.deepseek import (CALL_BEGIN, CALL_END, CALLS_BEGIN, CALLS_END, SEP,
                                      DeepSeekParser, DeepSeekRenderer)
from gateway.formats.harmony import HarmonyParser, HarmonyRenderer
from gateway.formats.harmony_prompt import harmony_names
from gateway.formats.qwen3 import Qwen3Parser, Qwen3Renderer
from gateway.formats.qwen3_coder import Qwen3CoderParser, Qwen3CoderRenderer
from services.errors import InvalidRequestError


class PassthroughParser:
    """Everything is content (``passthrough``)."""

    def __init__(self, _context: ParserContext) -> None:
        pass

    def feed(self, text: str) -> Piece:
        return Piece(content=text)

    def finish(self) -> Piece:
        return Piece()


@dataclass(frozen=True)
class ParserSpec:
    make: Callable[[ParserContext], StreamParser]
    tools: bool = True
    thinking: bool = False
    forced_call: forced.ForcedCallBuilder | None = None


def _harmony_call(tools: Sequence[dict[str, Any]]) -> forced.ForcedCall:
    names = harmony_names(tools)
    return forced.wrapped_arguments(
        lambda name: f"<|channel|>commentary to=functions.{names.get(name, name)} "
                     "<|constrain|>json<|message|>", "")(tools)


_HERMES = forced.json_calls("<tool_call>\n", "\n</tool_call>")
_DEEPSEEK = forced.wrapped_arguments(lambda name: f"{CALLS_BEGIN}{CALL_BEGIN}{name}{SEP}",
                                     f"{CALL_END}{CALLS_END}")

PARSERS: dict[str, ParserSpec] = {
    "harmony": ParserSpec(HarmonyParser, thinking=True, forced_call=_harmony_call),
    "qwen3": ParserSpec(lambda c: Qwen3Parser(c, thinking=False), forced_call=_HERMES),
    "qwen3-thinking": ParserSpec(lambda c: Qwen3Parser(c, thinking=True), thinking=True,
                                 forced_call=_HERMES),
    "qwen3-coder": ParserSpec(Qwen3CoderParser, forced_call=forced.xml_calls),
    "deepseek3": ParserSpec(DeepSeekParser, thinking=True, forced_call=_DEEPSEEK),
    "passthrough": ParserSpec(PassthroughParser, tools=False),
}

RENDERERS: dict[str, Callable[[], Renderer]] = {
    "harmony": HarmonyRenderer,
    "qwen3": Qwen3Renderer,
    "qwen3-coder": Qwen3CoderRenderer,
    "deepseek3.1": DeepSeekRenderer,
}


def check_names(renderer: str, parser: str) -> None:
    """400 for a renderer or parser Corral does not have (checked when a model is created)."""
    if renderer and renderer not in RENDERERS:
        raise InvalidRequestError(f'unknown renderer "{renderer}" (known: '
                                  f'{", ".join(sorted(RENDERERS))})')
    if parser and parser not in PARSERS:
        raise InvalidRequestError(f'unknown parser "{parser}" (known: '
                                  f'{", ".join(sorted(PARSERS))})')
