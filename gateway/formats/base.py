"""What every chat format shares: the ``Piece`` a parser yields, the parser and renderer
interfaces, and the small text helpers streaming parsers are built from.

A parser is fed the runner's text chunk by chunk (``feed``) and returns at once whatever is
decided; it holds back only text that could still be the start of a tag, so content streams
token by token and no partial markup ever reaches ``content``. ``finish`` releases the rest.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.output import Piece
from gateway.prompt import Think
from gateway.tools import tool_call_id

Message = dict[str, Any]
__all__ = ["Piece", "StreamParser", "BufferedParser", "Renderer", "ParserContext", "tool_call",
           "overlap", "trailing_space", "held_back", "split_first", "json_object"]


class StreamParser(Protocol):
    """Splits a model's output into content, thinking and tool calls as it streams."""

    def feed(self, text: str) -> Piece: ...

    def finish(self) -> Piece: ...


class Renderer(Protocol):
    """Builds a model's prompt from Ollama's messages, tools and ``think``."""

    def render(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
               think: Think = Think()) -> str: ...


@dataclass(frozen=True)
class ParserContext:
    """What a parser is set up with: the request's tools and think, and its last message
    (an assistant message there is a prefill the output continues)."""

    tools: Sequence[dict[str, Any]] = ()
    think: Think = Think()
    last_message: Message | None = None

    @property
    def prefilled(self) -> Message | None:
        last = self.last_message
        return last if last is not None and last.get("role") == "assistant" else None


def tool_call(name: str, arguments: dict[str, Any], index: int) -> dict[str, Any]:
    """A parsed call in Ollama's ``tool_calls`` shape, with a fresh ``call_xxxxxxxx`` id."""
    return {"id": tool_call_id(), "function": {"index": index, "name": name,
                                               "arguments": arguments}}


def overlap(text: str, *tags: str) -> int:
    """Length of the longest end of ``text`` that begins one of ``tags``."""
    best = 0
    for tag in tags:
        for size in range(min(len(text), len(tag)), best, -1):
            if text.endswith(tag[:size]):
                best = size
                break
    return best


def trailing_space(text: str) -> int:
    """Length of the whitespace ``text`` ends with."""
    return len(text) - len(text.rstrip())


def held_back(text: str, *tags: str, strip: bool = True) -> tuple[str, str]:
    """``(send, keep)``: keep what could start a tag (and, with ``strip``, the whitespace
    before it, which is dropped if a tag follows)."""
    cut = len(text) - overlap(text, *tags)
    if strip:
        cut -= trailing_space(text[:cut])
    return text[:cut], text[cut:]


def split_first(text: str, *tags: str) -> tuple[int, str]:
    """Where the earliest of ``tags`` starts in ``text`` and which it is (``-1, ""`` if none)."""
    found = [(at, tag) for tag in tags if (at := text.find(tag)) >= 0]
    return min(found, key=lambda item: (item[0], -len(item[1]))) if found else (-1, "")


def json_object(text: str) -> dict[str, Any] | None:
    """``text`` decoded as a JSON object, or None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class BufferedParser(ABC):
    """The state machine every streaming parser is: ``feed`` adds to ``buffer`` (the text not
    yet decided) and takes steps until one makes no progress; calls are numbered in order."""

    def __init__(self) -> None:
        self.buffer = ""
        self.calls = 0

    def feed(self, text: str) -> Piece:
        self.buffer += text
        piece = Piece()
        while self._step(piece):
            pass
        return piece

    @abstractmethod
    def _step(self, piece: Piece) -> bool:
        """One transition; True when another may make progress."""

    def _until(self, *tags: str) -> tuple[str, str]:
        """``(text, tag)``: the buffer up to the earliest of ``tags``, less the whitespace before
        it, with the buffer moved past the tag; with no tag yet, what can be sent now and ``""``
        (the buffer keeps what could still start one)."""
        at, tag = split_first(self.buffer, *tags)
        if at < 0:
            send, self.buffer = held_back(self.buffer, *tags)
            return send, ""
        text, self.buffer = self.buffer[:at].rstrip(), self.buffer[at + len(tag):]
        return text, tag

    def _add_call(self, piece: Piece, name: str, arguments: dict[str, Any]) -> None:
        piece.tool_calls.append(tool_call(name, arguments, self.calls))
        self.calls += 1
