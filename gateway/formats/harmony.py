"""Harmony (gpt-oss): messages ``<|start|>HEADER<|message|>BODY<|end|>`` on channels.

``analysis`` is reasoning, ``final`` the answer, ``commentary`` preambles and — with a
recipient (``to=functions.NAME``) — tool calls whose body is the JSON arguments. The prompt
ends with ``<|start|>assistant``, so the reply starts inside a header. A call ends with
``<|call|>``, an end-of-generation token, so a call still open when the stream ends is taken.
Reasoning effort (``Reasoning: low|medium|high``) comes from ``think``; ``max`` is ``high``.
Tool names that are not identifiers are renamed for the prompt and mapped back in replies.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.formats.base import (BufferedParser, Message, ParserContext, Piece, held_back,
                                  json_object)
from gateway.formats.harmony_prompt import harmony_names, render_harmony
from gateway.prompt import Think

log = structlog.get_logger()

START, END, MESSAGE = "<|start|>", "<|end|>", "<|message|>"
CALL, RETURN, CHANNEL, CONSTRAIN = "<|call|>", "<|return|>", "<|channel|>", "<|constrain|>"
_ENDS = (END, CALL, RETURN)


class _State(enum.Enum):
    BETWEEN = "between messages"
    HEADER = "reading a header"
    BODY = "reading a message body"


@dataclass(frozen=True)
class Header:
    role: str = ""
    channel: str = ""
    recipient: str = ""


def parse_header(raw: str) -> Header:
    """``assistant<|channel|>commentary to=functions.f <|constrain|>json`` and its variants."""
    text = raw.replace(CONSTRAIN, f" {CONSTRAIN}").replace(CHANNEL, f" {CHANNEL} ")
    tokens = text.split()
    channel = ""
    if CHANNEL in tokens:
        at = tokens.index(CHANNEL)
        channel = tokens[at + 1] if at + 1 < len(tokens) else ""
        del tokens[at:at + 2]
    recipient = next((t[3:] for t in tokens if t.startswith("to=")), "")
    role = next((t for t in tokens if not t.startswith(("to=", "<|"))), "")
    if tokens and tokens[0].startswith("to="):
        role = "tool"
    return Header(role=role, channel=channel, recipient=recipient)


class HarmonyParser(BufferedParser):
    """Routes each message body by its channel: thinking, content or a tool call."""

    def __init__(self, context: ParserContext) -> None:
        super().__init__()
        self.names = {v: k for k, v in harmony_names(context.tools).items()}
        self.show_thinking = context.think.enabled or not context.think.is_set
        self.state, self.header = _State.HEADER, Header()
        prefill = context.prefilled
        if prefill and prefill.get("content"):
            self.state, self.header = _State.BODY, Header("assistant", "final")
        elif prefill and prefill.get("thinking"):
            self.state, self.header = _State.BODY, Header("assistant", "analysis")
        self.buffer = "assistant" if self.state is _State.HEADER else ""
        self.arguments = ""

    def finish(self) -> Piece:
        piece = Piece()
        if self.state is _State.BODY:
            self._body(self.buffer, piece)
            self._end(piece)
        elif self.state is _State.BETWEEN and self.buffer.strip():
            piece.content = self.buffer  # text outside any message: keep it, never drop it
        self.buffer = ""
        return piece

    def _step(self, piece: Piece) -> bool:
        if self.state is _State.BETWEEN:
            at = self.buffer.find(START)
            outside, self.buffer = (held_back(self.buffer, START, strip=False) if at < 0 else
                                    (self.buffer[:at], self.buffer[at + len(START):]))
            if outside.strip():  # text outside any message: keep it rather than drop it
                piece.content += outside
            if at < 0:
                return False
            self.state = _State.HEADER
            return True
        if self.state is _State.HEADER:
            at = self.buffer.find(MESSAGE)
            if at < 0:
                return False
            self.header = parse_header(self.buffer[:at])
            self.buffer, self.state = self.buffer[at + len(MESSAGE):], _State.BODY
            return True
        ends = [(at, tag) for tag in _ENDS if (at := self.buffer.find(tag)) >= 0]
        if not ends:
            send, self.buffer = held_back(self.buffer, *_ENDS, strip=False)
            self._body(send, piece)
            return False
        at, tag = min(ends)
        self._body(self.buffer[:at], piece)
        self.buffer, self.state = self.buffer[at + len(tag):], _State.BETWEEN
        self._end(piece)
        return True

    def _body(self, text: str, piece: Piece) -> None:
        if not text:
            return
        if self.header.recipient:
            self.arguments += text
        elif self.header.channel == "analysis":
            if self.show_thinking:
                piece.thinking += text
        else:  # final, commentary preambles, or no channel at all
            piece.content += text

    def _end(self, piece: Piece) -> None:
        """A message ended: a tool message's body is complete JSON arguments."""
        recipient, raw = self.header.recipient, self.arguments
        self.header, self.arguments = Header(), ""
        if not recipient:
            return
        name = recipient.removeprefix("functions.")
        arguments = json_object(raw.strip() or "{}")
        if arguments is None:
            log.warning("tool_call_unparsed", format="harmony", raw=raw[:200])
            piece.content += raw
            return
        self._add_call(piece, self.names.get(name, name), arguments)


_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


def reasoning_effort(think: Think) -> str:
    """``Reasoning:`` for ``think``: its level, ``medium`` for true or unset, ``low`` for false
    (gpt-oss always reasons; false only asks for little and hides it)."""
    if isinstance(think.value, str):
        return _EFFORTS.get(think.value, "medium")
    return "low" if think.value is False else "medium"


class HarmonyRenderer:
    def render(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
               think: Think = Think()) -> str:
        return render_harmony(messages, tools=tools, effort=reasoning_effort(think))

