"""Writing a streamed answer to the terminal: word wrap, thinking markers, timing stats."""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any, TextIO

from services.cli_format import go_duration, width

GREY, BOLD, RESET = "\033[90m", "\033[1m", "\033[0m"


class WordWrapper:
    """Ollama's ``displayResponse``: print as it streams, moving a word that would cross the
    right margin (terminal width - 5) to the next line by backtracking over it."""

    def __init__(self, stream: TextIO | None = None, wrap: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.wrap = wrap
        self.line_length = 0
        self.word = ""

    def reset(self) -> None:
        self.line_length, self.word = 0, ""

    def write(self, content: str) -> None:
        term_width = shutil.get_terminal_size((80, 24)).columns
        if not self.wrap or term_width < 10:
            self.stream.write(self.word + content)
            self.word = ""
            self.stream.flush()
            return
        for ch in content:
            self._char(ch, term_width)
        self.stream.flush()

    def _char(self, ch: str, term_width: int) -> None:
        out = self.stream
        if self.line_length + 1 > term_width - 5:
            if width(self.word) > term_width - 10:
                out.write(self.word + ch)
                self.reset()
                return
            if self.word:
                out.write(f"\x1b[{width(self.word)}D")
            out.write("\x1b[K\n" + self.word + ch)
            self.line_length = width(self.word) + width(ch)
            return
        out.write(ch)
        self.line_length += width(ch)
        if width(ch) >= 2:
            self.word = ""
        elif ch in " \t":
            self.word = ""
        elif ch in "\r\n":
            self.reset()
        else:
            self.word += ch


class AnswerPrinter:
    """Prints content and thinking pieces of one answer, with Ollama's ``Thinking...`` and
    ``...done thinking.`` markers (grey on a terminal, plain otherwise)."""

    def __init__(self, *, wrap: bool, hide_thinking: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.plain = not self.stream.isatty()
        self.wrapper = WordWrapper(self.stream, wrap=wrap and not self.plain)
        self.hide_thinking = hide_thinking
        self.thinking = ""
        self.content = ""
        self._open = False

    def add(self, content: str, thinking: str = "", tool_calls: list[Any] | None = None) -> None:
        if thinking and not self.hide_thinking:
            if not self._open and not self.thinking:
                self.stream.write(self._opening())
                self._open = True
            self.thinking += thinking
            self.wrapper.write(thinking)
        if self._open and (content or tool_calls):
            if not self.thinking.endswith("\n"):
                self.stream.write("\n")
            self.stream.write(self._closing())
            self._open = False
            self.wrapper.reset()
        self.content += content
        self.wrapper.write(content)
        for call in tool_calls or []:
            self.stream.write(self._tool_call(call))

    def _opening(self) -> str:
        text = "Thinking...\n"
        return text if self.plain else GREY + BOLD + text + RESET + GREY

    def _closing(self) -> str:
        text = "...done thinking.\n\n"
        return text if self.plain else GREY + BOLD + text + RESET

    def _tool_call(self, call: dict[str, Any]) -> str:
        fn = call.get("function") or {}
        return (f"  Model called a non-existent function '{fn.get('name', '')}()' with arguments: "
                f"{json.dumps(fn.get('arguments') or {}, separators=(',', ':'))}")


def print_stats(final: dict[str, Any], stream: TextIO | None = None) -> None:
    """Ollama's ``Metrics.Summary``: each line only when its value is non-zero."""
    out = stream or sys.stderr
    for key in ("total_duration", "load_duration"):
        if final.get(key):
            _stat(out, key, go_duration(final[key]))
    for stage in ("prompt_eval", "eval"):
        count, duration = final.get(f"{stage}_count"), final.get(f"{stage}_duration")
        if count:
            _stat(out, f"{stage}_count", f"{count} token(s)")
        if duration:
            _stat(out, f"{stage}_duration", go_duration(duration))
            _stat(out, f"{stage}_rate", f"{(count or 0) / (duration / 1e9):.2f} tokens/s")
    out.flush()


def _stat(out: TextIO, key: str, value: str) -> None:
    """One summary line, its label (``prompt_eval_rate`` → ``prompt eval rate:``) padded as
    Ollama's are."""
    out.write(f"{key.replace('_', ' ') + ':':<22}{value}\n")
