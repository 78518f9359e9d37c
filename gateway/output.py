"""The model's raw text → Ollama's ``thinking``, ``content`` and ``tool_calls`` pieces.

Thinking is split off first (when the request thinks and the template names its tags), then
tool calls are looked for in what remains (when the chat request has tools), as Ollama's chat
handler chains its two parsers. A piece with nothing to say yet is ``None``: the caller sends
nothing until the parsers have decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.thinking import ThinkingParser
from gateway.tools import ToolCallParser, tool_call_id


@dataclass
class Piece:
    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls)

    def add(self, other: Piece) -> None:
        self.content += other.content
        self.thinking += other.thinking
        self.tool_calls += other.tool_calls


class OutputParser:
    """Feed text chunks; ``finish`` returns whatever the parsers still held."""

    def __init__(self, *, thinking_tags: tuple[str, str] | None = None, prefilled: bool = False,
                 tool_tag: str = "", tools: Sequence[dict[str, Any]] = ()) -> None:
        self.thinking = ThinkingParser(*thinking_tags) if thinking_tags else None
        if self.thinking is not None and prefilled:
            self.thinking.add(self.thinking.opening)  # the prompt already opened the thought
        self.tools = ToolCallParser(tool_tag, tools) if tools else None

    def feed(self, text: str) -> Piece:
        thinking, content = self.thinking.add(text) if self.thinking else ("", text)
        return self._tools(Piece(content, thinking), final=False)

    def finish(self) -> Piece:
        thinking, content = self.thinking.flush() if self.thinking else ("", "")
        return self._tools(Piece(content, thinking), final=True)

    def _tools(self, piece: Piece, *, final: bool) -> Piece:
        if self.tools is None:
            return piece
        calls, content = self.tools.add(piece.content) if piece.content else ([], "")
        if final:
            content += self.tools.leftover()
        piece.content = content
        piece.tool_calls = [{"id": tool_call_id(), **call} for call in calls]
        return piece
