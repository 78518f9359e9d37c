"""Splitting a thinking model's streamed output into ``thinking`` and ``content``.

Ollama's generic parser (``thinking/parser.go``): output that starts (after whitespace) with the
opening tag is thinking until the closing tag; whitespace right after either tag is dropped;
output that starts with anything else is all content. Text that might be the start of a tag is
held back until it is decided, so a tag split across chunks never leaks.
"""

from __future__ import annotations

import enum


class _State(enum.Enum):
    LOOKING = "looking for the opening tag"
    STARTED = "eating whitespace after the opening tag"
    THINKING = "thinking"
    ENDED = "eating whitespace after the closing tag"
    DONE = "content"


class ThinkingParser:
    """Feed chunks with ``add``; call ``flush`` once at the end for anything held back."""

    def __init__(self, opening: str = "<think>", closing: str = "</think>") -> None:
        self.opening = opening
        self.closing = closing
        self.state = _State.LOOKING
        self._buffer = ""

    def add(self, text: str) -> tuple[str, str]:
        """``(thinking, content)`` that can be sent now."""
        self._buffer += text
        thinking, content = [], []
        while True:
            piece_thinking, piece_content, again = self._step()
            thinking.append(piece_thinking)
            content.append(piece_content)
            if not again:
                return "".join(thinking), "".join(content)

    def flush(self) -> tuple[str, str]:
        """What is still held back when the stream ends (an unfinished tag is kept as text)."""
        rest, self._buffer = self._buffer, ""
        if self.state is _State.THINKING:
            return rest, ""
        if self.state is _State.LOOKING:
            return "", rest
        return "", rest.lstrip() if self.state is _State.ENDED else rest

    def _step(self) -> tuple[str, str, bool]:
        """One transition: (thinking, content, whether another step may make progress)."""
        buffer = self._buffer
        if self.state is _State.LOOKING:
            stripped = buffer.lstrip()
            if stripped.startswith(self.opening):
                after = stripped[len(self.opening):].lstrip()
                self._buffer = after
                self.state = _State.THINKING if after else _State.STARTED
                return "", "", True
            if not stripped or self.opening.startswith(stripped):
                return "", "", False  # only whitespace or part of the tag so far
            self.state, self._buffer = _State.DONE, ""
            return "", buffer, False
        if self.state is _State.STARTED:
            stripped = buffer.lstrip()
            self._buffer = stripped
            if stripped:
                self.state = _State.THINKING
            return "", "", bool(stripped)
        if self.state is _State.THINKING:
            return self._thinking(buffer)
        if self.state is _State.ENDED:
            stripped = buffer.lstrip()
            self._buffer = ""
            if stripped:
                self.state = _State.DONE
            return "", stripped, False
        self._buffer = ""
        return "", buffer, False

    def _thinking(self, buffer: str) -> tuple[str, str, bool]:
        cut = buffer.find(self.closing)
        if cut >= 0:
            rest = buffer[cut + len(self.closing):].lstrip()
            self._buffer = ""
            self.state = _State.DONE if rest else _State.ENDED
            return buffer[:cut], rest, False
        held = _partial_suffix(buffer, self.closing)
        self._buffer = buffer[len(buffer) - held:] if held else ""
        return buffer[:len(buffer) - held], "", False


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that begins ``tag``."""
    for size in range(min(len(text), len(tag)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
