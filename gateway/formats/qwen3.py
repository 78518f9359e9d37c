"""Qwen3: ChatML with ``<think>`` reasoning and Hermes-style JSON tool calls.

Output: optional ``<think>…</think>`` (thinking models start inside it: their prompt may already
have opened it), then content, and tool calls as ``<tool_call>{"name": …, "arguments": …}
</tool_call>``. A tool call that starts before ``</think>`` ends the thinking, as Ollama's
parser treats it. Whitespace around the tags is not content.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any

import structlog

from gateway.formats.base import (Message, ParserContext, Piece, held_back, json_object,
                                  split_first, tool_call)
from gateway.prompt import Think

log = structlog.get_logger()

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


class _State(enum.Enum):
    THINKING = "thinking"
    AFTER_THINKING = "eating whitespace after </think>"
    CONTENT = "content"
    TOOL = "inside <tool_call>"


class Qwen3Parser:
    """``qwen3`` (no thinking) and ``qwen3-thinking`` (thinks unless told not to)."""

    def __init__(self, context: ParserContext, *, thinking: bool) -> None:
        self.thinks = thinking and context.think.enabled and not (
            context.prefilled and context.prefilled.get("content"))
        self.state = _State.THINKING if self.thinks else _State.CONTENT
        self.may_open = self.thinks  # the model may still write the <think> its prompt opened
        self.at_start = True  # whitespace opening the thought is not part of it
        self.buffer = ""
        self.calls = 0

    def feed(self, text: str) -> Piece:
        self.buffer += text
        piece = Piece()
        while self._step(piece):
            pass
        return piece

    def finish(self) -> Piece:
        piece, rest, self.buffer = Piece(), self.buffer, ""
        if self.state is _State.THINKING:
            piece.thinking = rest.rstrip()
        elif self.state is _State.TOOL:
            self._tool(rest, piece, closed=False)
        else:
            piece.content = rest.lstrip() if self.state is _State.AFTER_THINKING else rest
        return piece

    def _step(self, piece: Piece) -> bool:
        """One transition; True when another may make progress."""
        if self.state is _State.THINKING:
            return self._thinking(piece)
        if self.state is _State.AFTER_THINKING:
            self.buffer = self.buffer.lstrip()
            if self.buffer:
                self.state = _State.CONTENT
            return bool(self.buffer)
        if self.state is _State.CONTENT:
            at = self.buffer.find(TOOL_OPEN)
            if at < 0:
                send, self.buffer = held_back(self.buffer, TOOL_OPEN)
                piece.content += send
                return False
            piece.content += self.buffer[:at].rstrip()
            self.buffer, self.state = self.buffer[at + len(TOOL_OPEN):], _State.TOOL
            return True
        at = self.buffer.find(TOOL_CLOSE)
        if at < 0:
            return False
        raw, self.buffer = self.buffer[:at], self.buffer[at + len(TOOL_CLOSE):].lstrip()
        self.state = _State.CONTENT
        self._tool(raw, piece, closed=True)
        return True

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
        at, tag = split_first(self.buffer, THINK_CLOSE, TOOL_OPEN)
        if at < 0:
            send, self.buffer = held_back(self.buffer, THINK_CLOSE, TOOL_OPEN)
            piece.thinking += send
            return False
        piece.thinking += self.buffer[:at].rstrip()
        self.buffer = self.buffer[at + len(tag):].lstrip()
        self.state = _State.AFTER_THINKING if tag == THINK_CLOSE else _State.TOOL
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
        piece.tool_calls.append(tool_call(name, arguments, self.calls))
        self.calls += 1


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
