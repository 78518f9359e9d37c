"""Qwen3: ChatML with ``<think>`` reasoning and Hermes-style JSON tool calls.

Output: optional ``<think>…</think>`` (thinking models start inside it: their prompt may already
have opened it), then content, and tool calls as ``<tool_call>{"name": …, "arguments": …}
</tool_call>``. A tool call that starts before ``</think>`` ends the thinking, as Ollama's
parser treats it. Whitespace around the tags is not content.
"""

from __future__ import annotations

import enum
import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import structlog

from gateway.formats.base import BufferedParser, Message, ParserContext, Piece, json_object
from gateway.prompt import Think

log = structlog.get_logger()

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


class _State(enum.Enum):
    THINKING = "thinking"
    AFTER_THINKING = "eating whitespace after </think>"
    CONTENT = "content, or inside <tool_call> when in_call"


class ToolCallParser(BufferedParser):
    """Content with calls between ``<tool_call>`` and ``</tool_call>`` (Qwen3, Qwen3-Coder):
    ``_tool`` reads one call's text (``closed`` when its end tag came)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_call = False

    def _content(self, piece: Piece) -> bool:
        """A step in the content: text up to a call, or a whole call."""
        if not self.in_call:
            text, tag = self._until(TOOL_OPEN)
            piece.content += text
            self.in_call = bool(tag)
            return self.in_call
        at = self.buffer.find(TOOL_CLOSE)
        if at < 0:
            return False
        raw, self.buffer = self.buffer[:at], self.buffer[at + len(TOOL_CLOSE):].lstrip()
        self.in_call = False
        self._tool(raw, piece, closed=True)
        return True

    @abstractmethod
    def _tool(self, raw: str, piece: Piece, *, closed: bool) -> None:
        """One call's text into a tool call (or, unparsable, back into content)."""


class Qwen3Parser(ToolCallParser):
    """``qwen3`` (no thinking) and ``qwen3-thinking`` (thinks unless told not to)."""

    def __init__(self, context: ParserContext, *, thinking: bool) -> None:
        super().__init__()
        self.thinks = thinking and context.think.enabled and not (
            context.prefilled and context.prefilled.get("content"))
        self.state = _State.THINKING if self.thinks else _State.CONTENT
        self.may_open = self.thinks  # the model may still write the <think> its prompt opened
        self.at_start = True  # whitespace opening the thought is not part of it

    def finish(self) -> Piece:
        piece, rest, self.buffer = Piece(), self.buffer, ""
        if self.state is _State.THINKING:
            piece.thinking = rest.rstrip()
        elif self.in_call:
            self._tool(rest, piece, closed=False)
        else:
            piece.content = rest.lstrip() if self.state is _State.AFTER_THINKING else rest
        return piece

    def _step(self, piece: Piece) -> bool:
        if self.state is _State.THINKING:
            return self._thinking(piece)
        if self.state is _State.AFTER_THINKING:
            self.buffer = self.buffer.lstrip()
            if self.buffer:
                self.state = _State.CONTENT
            return bool(self.buffer)
        return self._content(piece)

    def _thinking(self, piece: Piece) -> bool:
        if self.at_start:
            self.buffer = self.buffer.lstrip()
            if not self.buffer:
                return False
            if self.may_open and self.buffer.startswith(THINK_OPEN):
                self.buffer, self.may_open = self.buffer[len(THINK_OPEN):], False
                return True
            if self.may_open and THINK_OPEN.startswith(self.buffer):
                return False
            self.at_start = self.may_open = False
        thought, tag = self._until(THINK_CLOSE, TOOL_OPEN)
        piece.thinking += thought
        if not tag:
            return False
        self.buffer = self.buffer.lstrip()
        if tag == THINK_CLOSE:
            self.state = _State.AFTER_THINKING
        else:
            self.state, self.in_call = _State.CONTENT, True
        return True

    def _tool(self, raw: str, piece: Piece, *, closed: bool) -> None:
        call = json_object(raw.strip())
        name = call.get("name") if call else None
        arguments = call.get("arguments", call.get("parameters", {})) if call else None
        if isinstance(arguments, str):
            arguments = json_object(arguments)
        if not isinstance(name, str) or not name or not isinstance(arguments, dict):
            log.warning("tool_call_unparsed", format="qwen3", raw=raw[:200])
            piece.content += TOOL_OPEN + raw + (TOOL_CLOSE if closed else "")
            return
        self._add_call(piece, name, arguments)


# -- rendering ---------------------------------------------------------------------------------

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def hermes_call(call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    body = json.dumps({"name": function.get("name", ""),
                       "arguments": function.get("arguments") or {}}, ensure_ascii=False)
    return f"{TOOL_OPEN}\n{body}\n{TOOL_CLOSE}"


class Qwen3Renderer:
    """Qwen3's chat template: ChatML, tools in the system turn, tool results as
    ``<tool_response>`` in a user turn, reasoning kept only after the last user turn, and an
    empty think block when thinking is off."""

    def render(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
               think: Think = Think()) -> str:
        out: list[str] = []
        system, rest = "", list(messages)
        if rest and rest[0].get("role") == "system":
            system, rest = rest[0].get("content", ""), rest[1:]
        if tools:
            listed = "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools)
            head = f"{system}\n\n" if system else ""
            out.append(f"{IM_START}system\n{head}{TOOLS_PREAMBLE}{listed}{TOOLS_POSTAMBLE}"
                       f"{IM_END}\n")
        elif system:
            out.append(f"{IM_START}system\n{system}{IM_END}\n")
        last_user = max((i for i, m in enumerate(rest) if m.get("role") == "user"), default=-1)
        for i, message in enumerate(rest):
            role = message.get("role", "")
            prefill = i == len(rest) - 1 and role == "assistant"
            if role == "assistant":
                out.append(self._assistant(message, keep_thinking=i > last_user,
                                           prefill=prefill))
            elif role == "tool":
                first = i == 0 or rest[i - 1].get("role") != "tool"
                last = i == len(rest) - 1 or rest[i + 1].get("role") != "tool"
                out.append((f"{IM_START}user" if first else "") + "\n<tool_response>\n"
                           f"{message.get('content', '')}\n</tool_response>"
                           + (f"{IM_END}\n" if last else ""))
            else:
                out.append(f"{IM_START}{role}\n{message.get('content', '')}{IM_END}\n")
        if not rest or rest[-1].get("role") != "assistant":
            out.append(f"{IM_START}assistant\n")
            if think.is_set and not think.enabled:
                out.append(f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n")
        return "".join(out)

    @staticmethod
    def _assistant(message: Message, *, keep_thinking: bool, prefill: bool) -> str:
        content = message.get("content", "")
        text = content
        if keep_thinking and message.get("thinking"):
            text = f"{THINK_OPEN}\n{message['thinking'].strip()}\n{THINK_CLOSE}\n\n" + \
                content.lstrip("\n")
        calls = [hermes_call(c) for c in message.get("tool_calls") or []]
        if calls:  # a newline between the content (if any) and each call
            text += ("\n" if content else "") + "\n".join(calls)
        return f"{IM_START}assistant\n{text}" + ("" if prefill else f"{IM_END}\n")
