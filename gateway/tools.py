"""Tool calls: finding them in a model's streamed output, in Ollama's ``tool_calls`` shape.

The parser follows Ollama's template-driven one (``tools/tools.go``). The tag that opens a tool
call comes from the template (``<tool_call>``, ``[TOOL_CALLS]``...) or is ``{`` for models that
answer bare JSON. Text before the tag is content. After it, each call is found by the name of
one of the request's tools and the first JSON object that holds its arguments — under
``arguments``/``parameters`` next to ``name``, under the tool's own name, or the object itself;
arguments sent as a JSON string are decoded. With a ``{``/``[`` tag, output that does not start
with JSON is plain content, and a balanced object or list ends tool parsing.
"""

from __future__ import annotations

import enum
import json
import secrets
import string
from collections.abc import Iterator, Sequence
from typing import Any

_ID_ALPHABET = string.ascii_lowercase + string.digits


def tool_call_id() -> str:
    """``call_`` and 8 random lower-case letters or digits, as Ollama makes them."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def tool_names(tools: Sequence[dict[str, Any]]) -> list[str]:
    return [str((t.get("function") or {}).get("name", "")) for t in tools
            if isinstance(t, dict) and (t.get("function") or {}).get("name")]


class _State(enum.Enum):
    LOOKING = "looking for the tag"
    CALLING = "reading tool calls"
    DONE = "plain content"


class ToolCallParser:
    """``add`` returns ``(calls, content)`` per chunk; ``leftover`` gives the final content."""

    def __init__(self, tag: str, tools: Sequence[dict[str, Any]]) -> None:
        self.tag = tag or "{"
        self.names = tool_names(tools)
        self.state = _State.LOOKING
        self.buffer = ""
        self.count = 0

    def add(self, text: str) -> tuple[list[dict[str, Any]], str]:
        if self.state is _State.DONE:
            return [], text
        self.buffer += text
        content = ""
        if self.state is _State.LOOKING:
            at, found = self._find_tag()
            content, self.buffer = (self.buffer, "") if at < 0 else (
                self.buffer[:at], self.buffer[at:])
            if self.tag in ("{", "[") and content.strip():
                self.state = _State.DONE
                rest, self.buffer = self.buffer, ""
                return [], content + rest
            if not found:
                return [], content
            self.state = _State.CALLING
            if self.tag in ("{", "["):
                content = ""  # only blanks came before the JSON
        calls = []
        while (call := self._next_call()) is not None:
            calls.append(call)
        if self._balanced():  # what follows the JSON is content (blank lines before it are not)
            self.state = _State.DONE
            content, self.buffer = self.buffer, ""
        return calls, content

    def leftover(self) -> str:
        """Content still held at the end: unparsed JSON when no call was found, else nothing."""
        if self.count == 0 and (self.tag in ("{", "[") or self.state is _State.LOOKING):
            return self.buffer
        return ""

    def _find_tag(self) -> tuple[int, bool]:
        at = self.buffer.find(self.tag)
        if at >= 0:
            return at, True
        for size in range(min(len(self.buffer), len(self.tag)), 0, -1):
            if self.buffer.endswith(self.tag[:size]):
                return len(self.buffer) - size, False
        return -1, False

    def _next_call(self) -> dict[str, Any] | None:
        name, name_end = self._find_name()
        if name is None:
            return None
        arguments, args_end = find_arguments(name, self.buffer)
        if arguments is None:
            return None
        self.buffer = self.buffer[max(name_end, args_end):]
        call = {"function": {"index": self.count, "name": name, "arguments": arguments}}
        self.count += 1
        return call

    def _find_name(self) -> tuple[str | None, int]:
        """The earliest (then longest) tool name in the buffer; None while a name may be cut."""
        buffer = self.buffer
        longest = max((len(name) for name in self.names), default=0)
        for size in range(1, min(len(buffer), longest) + 1):
            tail = buffer[-size:]
            if any(len(tail) < len(name) and name.startswith(tail) for name in self.names):
                return None, 0
        best, best_at = None, -1
        for name in self.names:
            at = buffer.find(name)
            if at < 0:
                continue
            if best is None or at < best_at or (at == best_at and len(name) > len(best)):
                best, best_at = name, at
        return (best, best_at + len(best)) if best is not None else (None, 0)

    def _balanced(self) -> bool:
        if self.tag not in ("{", "["):
            return False
        opening, closing = self.tag, "}" if self.tag == "{" else "]"
        depth = 0
        for char in _outside_strings(self.buffer):
            if char == opening:
                depth += 1
            elif char == closing:
                depth -= 1
                if depth == 0:
                    return True
        return False


def _outside_strings(text: str) -> Iterator[str]:
    """The characters of ``text`` that are not inside JSON string literals."""
    in_string = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
        elif not in_string:
            yield char


def find_arguments(name: str, buffer: str) -> tuple[dict[str, Any] | None, int]:
    """The arguments of tool ``name`` in the first complete JSON object of ``buffer``."""
    start, depth = -1, 0
    in_string = escaped = False
    for i, char in enumerate(buffer):
        if escaped:
            escaped = False
            continue
        if char == "\\":
            escaped = True
            continue
        if char == '"':
            in_string = not in_string
            continue
        if in_string:
            continue
        if char == "{":
            start = i if depth == 0 else start
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0 and start >= 0:
                try:
                    data = json.loads(buffer[start:i + 1])
                except ValueError:
                    start = -1
                    continue
                found, arguments = _arguments_in(data, name)
                return (arguments if found and arguments is not None else
                        data if not found else {}), i + 1
    return None, 0


def _arguments_in(obj: Any, name: str) -> tuple[bool, dict[str, Any] | None]:
    """(whether a call was recognised, its arguments) searched depth-first."""
    if not isinstance(obj, dict):
        return False, None
    if "name" in obj:
        for key in ("arguments", "parameters"):
            if (args := _as_object(obj.get(key))) is not None:
                return True, args
        return True, None
    if (args := _as_object(obj.get(name))) is not None:
        return True, args
    for value in obj.values():
        children = value if isinstance(value, list) else [value]
        for child in children:
            found, args = _arguments_in(child, name)
            if found:
                return True, args
    return False, None


def _as_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return None
