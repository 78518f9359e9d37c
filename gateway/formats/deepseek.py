"""DeepSeek V3.1 style: ``</think>``-terminated reasoning and JSON tool calls between DeepSeek's
own markers (``<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜>
…<｜tool▁calls▁end｜>``).

The prompt opens the thought (``<｜Assistant｜><think>``), so a thinking reply starts as
thinking and switches to content at ``</think>``; with thinking off the prompt closes it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any

import structlog

from gateway.formats.base import (BufferedParser, Message, ParserContext, Piece, held_back,
                                  json_object, split_first)
from gateway.prompt import Think

log = structlog.get_logger()

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
OUTPUT_BEGIN, OUTPUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"


class _State(enum.Enum):
    THINKING = "thinking"
    CONTENT = "content"
    CALLS = "inside the tool calls block"


class DeepSeekParser(BufferedParser):
    """``deepseek3``: thinking until ``</think>``, then content and tool-call blocks."""

    def __init__(self, context: ParserContext) -> None:
        super().__init__()
        thinking = context.think.enabled and not (
            context.prefilled and context.prefilled.get("content"))
        self.state = _State.THINKING if thinking else _State.CONTENT

    def finish(self) -> Piece:
        piece, rest, self.buffer = Piece(), self.buffer, ""
        if self.state is _State.THINKING:
            piece.thinking = rest.rstrip()
        elif self.state is _State.CALLS:
            piece.add(self._calls_at_end(rest))
        else:
            piece.content = rest
        return piece

    def _step(self, piece: Piece) -> bool:
        if self.state is _State.THINKING:
            thought, tag = self._until(THINK_CLOSE)
            piece.thinking += thought
            if not tag:
                return False
            self.buffer, self.state = self.buffer.lstrip(), _State.CONTENT
            return True
        if self.state is _State.CONTENT:
            at, tag = split_first(self.buffer, CALLS_BEGIN, OUTPUT_BEGIN)
            if at < 0:
                send, self.buffer = held_back(self.buffer, CALLS_BEGIN, OUTPUT_BEGIN)
                piece.content += send
                return False
            if tag == OUTPUT_BEGIN:  # the model echoing a tool result: its text is content
                end = self.buffer.find(OUTPUT_END, at)
                if end < 0:
                    piece.content += self.buffer[:at]
                    self.buffer = self.buffer[at:]
                    return False
                piece.content += self.buffer[:at] + self.buffer[at + len(tag):end]
                self.buffer = self.buffer[end + len(OUTPUT_END):]
                return True
            piece.content += self.buffer[:at].rstrip()
            self.buffer, self.state = self.buffer[at + len(tag):], _State.CALLS
            return True
        return self._next_call(piece)

    def _next_call(self, piece: Piece) -> bool:
        at, tag = split_first(self.buffer, CALL_BEGIN, CALLS_END)
        if tag == CALLS_END:
            self.buffer, self.state = self.buffer[at + len(tag):].lstrip(), _State.CONTENT
            return True
        end = self.buffer.find(CALL_END, at) if at >= 0 else -1
        if end < 0:
            return False
        self._call(self.buffer[at + len(CALL_BEGIN):end], piece)
        self.buffer = self.buffer[end + len(CALL_END):].lstrip()
        return True

    def _call(self, raw: str, piece: Piece) -> None:
        name, sep, arguments = raw.partition(SEP)
        parsed = json_object(arguments.strip()) if sep else None
        if parsed is None or not name.strip():
            log.warning("tool_call_unparsed", format="deepseek3", raw=raw[:200])
            piece.content += CALL_BEGIN + raw + CALL_END
            return
        self._add_call(piece, name.strip(), parsed)

    def _calls_at_end(self, rest: str) -> Piece:
        """Generation stopped inside a tool-call block: take a last call without its end tag."""
        piece = Piece()
        self.buffer = rest.removesuffix(CALLS_END)
        while self._next_call(piece):
            pass
        at = self.buffer.find(CALL_BEGIN)
        if at >= 0:
            self._call(self.buffer[at + len(CALL_BEGIN):], piece)
        self.buffer = ""
        return piece


class DeepSeekRenderer:
    """``deepseek3.1``: system prompts first, tools described with JSON parameters, prior
    turns without their reasoning, and ``<think>`` or ``</think>`` after the last
    ``<｜Assistant｜>`` as thinking is on or off."""

    def render(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
               think: Think = Think()) -> str:
        system = "\n\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
        out = [BOS, system]
        if tools:
            out.append("\n\n## Tools\nYou have access to the following tools:\n")
            for tool in tools:
                function = tool.get("function") or {}
                out.append(f"\n### {function.get('name', '')}\nDescription: "
                           f"{function.get('description', '')}\n\nParameters: "
                           f"{json.dumps(function.get('parameters') or {}, ensure_ascii=False)}\n")
            out.append(
                "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n"
                f"{CALLS_BEGIN}{CALL_BEGIN}tool_call_name{SEP}tool_call_arguments{CALL_END}"
                "{{additional_tool_calls}}" + f"{CALLS_END}\n\nWhere:\n\n"
                "- `tool_call_name` must be an exact match to one of the available tools\n"
                "- `tool_call_arguments` must be valid JSON that strictly follows the tool's "
                "Parameters Schema\n- For multiple tool calls, chain them directly without "
                "separators or spaces\n")
        after_user = after_tool = False
        for message in messages:
            role, content = message.get("role"), message.get("content", "")
            if role == "user":
                out.append(USER + content)
                after_user, after_tool = True, False
            elif role == "tool":
                out.append(OUTPUT_BEGIN + content + OUTPUT_END)
                after_user, after_tool = False, True
            elif role == "assistant":
                if after_user:
                    out.append(ASSISTANT + THINK_CLOSE)
                out.append(self._assistant(message, after_tool))
                after_user = after_tool = False
        if after_user:
            out.append(ASSISTANT + (THINK_OPEN if think.enabled else THINK_CLOSE))
        return "".join(out)

    @staticmethod
    def _assistant(message: Message, after_tool: bool) -> str:
        content: str = message.get("content", "")
        if not after_tool and THINK_CLOSE in content:
            content = content.split(THINK_CLOSE, 1)[1]
        calls = message.get("tool_calls") or []
        if not calls:
            return content + EOS
        body = "".join(
            f"{CALL_BEGIN}{(c.get('function') or {}).get('name', '')}{SEP}"
            f"{json.dumps((c.get('function') or {}).get('arguments') or {}, ensure_ascii=False)}"
            f"{CALL_END}" for c in calls)
        return content + CALLS_BEGIN + body + CALLS_END + EOS
