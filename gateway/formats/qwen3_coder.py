"""Qwen3-Coder: ChatML with XML tool calls.

A call is ``<tool_call><function=NAME><parameter=KEY>VALUE</parameter>…</function></tool_call>``
with raw (not JSON) values; a value is typed by the tool's schema (null, boolean, integer,
number, array, object, else string), as Ollama's parser and the reference implementation do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import structlog

from gateway.formats.base import Message, ParserContext, Piece
from gateway.formats.qwen3 import IM_END, IM_START, TOOL_CLOSE, TOOL_OPEN, ToolCallParser
from gateway.prompt import Think

log = structlog.get_logger()

_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|\Z)", re.S)
_PARAMETER = re.compile(r"<parameter=([^>\n]+)>(.*?)(?:</parameter>|(?=<parameter=)|\Z)", re.S)
DEFAULT_SYSTEM = "You are Qwen, a helpful AI assistant that can interact with a computer to " \
                 "solve tasks."


class Qwen3CoderParser(ToolCallParser):
    """Content until ``<tool_call>``; each complete call becomes a tool call at once."""

    def __init__(self, context: ParserContext) -> None:
        super().__init__()
        self.tools = {(t.get("function") or {}).get("name"): t.get("function") or {}
                      for t in context.tools}

    def _step(self, piece: Piece) -> bool:
        return self._content(piece)

    def finish(self) -> Piece:
        piece, rest, self.buffer = Piece(), self.buffer, ""
        if self.in_call:
            self._tool(rest, piece, closed=False)
        else:
            piece.content = rest
        return piece

    def _tool(self, raw: str, piece: Piece, *, closed: bool) -> None:
        match = _FUNCTION.search(raw)
        if match is None:
            log.warning("tool_call_unparsed", format="qwen3-coder", raw=raw[:200])
            piece.content += TOOL_OPEN + raw + (TOOL_CLOSE if closed else "")
            return
        name = match.group(1).strip()
        properties = ((self.tools.get(name) or {}).get("parameters") or {}).get("properties") or {}
        arguments = {key.strip(): typed_value(value, properties.get(key.strip()))
                     for key, value in _PARAMETER.findall(match.group(2))}
        self._add_call(piece, name, arguments)


def _types(prop: Any) -> list[str]:
    if not isinstance(prop, dict):
        return []
    if isinstance(prop.get("anyOf"), list):
        return [t for option in prop["anyOf"] for t in _types(option)]
    kind = prop.get("type")
    return [kind] if isinstance(kind, str) else [t for t in kind or [] if isinstance(t, str)]


def typed_value(raw: str, prop: Any) -> Any:
    """A raw parameter value typed by its schema: the most specific declared type that fits."""
    raw = raw.removeprefix("\n").removesuffix("\n")
    if raw.lower() == "null":
        return None
    types = _types(prop)
    for kind in ("boolean", "integer", "number", "array", "object"):
        if kind in types and (value := _as(kind, raw)) is not _NO:
            return value
    if types == ["boolean"]:
        return False  # the reference parser's answer for a non-boolean boolean
    return raw


_NO = object()


def _as(kind: str, raw: str) -> Any:
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw.strip().lower(), _NO)
    if kind == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            return _NO
    if kind == "number":
        try:
            number = float(raw.strip())
        except ValueError:
            return _NO
        return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number
    try:
        value = json.loads(raw)
    except ValueError:
        return _NO
    return value if isinstance(value, list if kind == "array" else dict) else _NO


# -- rendering ---------------------------------------------------------------------------------

CALL_FORMAT = (
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:"
    "\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\n"
    "value_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second "
    "parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
    "<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner "
    "<function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your "
    "function call in natural language BEFORE the function call, but NOT after\n- If there is "
    "no function call available, answer the question like normal with your current knowledge "
    "and do not tell the user about function calls\n</IMPORTANT>")


def _extra_keys(obj: dict[str, Any], handled: set[str]) -> str:
    out = []
    for key, value in obj.items():
        if key in handled or value is None:
            continue
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) \
            else str(value)
        out.append(f"\n<{key}>{text}</{key}>")
    return "".join(out)


def _tool_definition(tool: dict[str, Any]) -> str:
    function = tool.get("function") or {}
    parameters = function.get("parameters") or {}
    out = [f"\n<function>\n<name>{function.get('name', '')}</name>"]
    if function.get("description"):
        out.append(f"\n<description>{function['description']}</description>")
    out.append("\n<parameters>")
    for name, prop in (parameters.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        out.append(f"\n<parameter>\n<name>{name}</name>")
        if kind := prop.get("type"):
            text = kind if isinstance(kind, str) else json.dumps(kind)
            out.append(f"\n<type>{text}</type>")
        if prop.get("description"):
            out.append(f"\n<description>{prop['description']}</description>")
        out.append(_extra_keys(prop, {"type", "description"}) + "\n</parameter>")
    out.append(_extra_keys(parameters, {"type", "properties"}))
    out.append("\n</parameters>\n</function>")
    return "".join(out)


def xml_call(call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    params = "".join(
        f"\n<parameter={key}>\n{_argument_text(value)}\n</parameter>"
        for key, value in (function.get("arguments") or {}).items())
    return f"\n{TOOL_OPEN}\n<function={function.get('name', '')}>{params}\n</function>\n{TOOL_CLOSE}"


def _argument_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Qwen3CoderRenderer:
    """The first system message wins; tools are listed in XML in the system turn."""

    def render(self, messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
               think: Think = Think()) -> str:
        system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
        rest = [m for m in messages if m.get("role") != "system"]
        out: list[str] = []
        if system or tools:
            text = system or DEFAULT_SYSTEM
            if tools:
                text += ("\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>"
                         + "".join(_tool_definition(t) for t in tools) + "\n</tools>"
                         + CALL_FORMAT)
            out.append(f"{IM_START}system\n{text}{IM_END}\n")
        for i, message in enumerate(rest):
            role, content = message.get("role", ""), message.get("content", "")
            prefill = i == len(rest) - 1 and role == "assistant"
            if role == "assistant" and message.get("tool_calls"):
                calls = "".join(xml_call(c) for c in message["tool_calls"])
                out.append(f"{IM_START}assistant\n" + (content + "\n" if content else "")
                           + calls + f"{IM_END}\n")
            elif role == "assistant":
                out.append(f"{IM_START}assistant\n{content}" + ("" if prefill else f"{IM_END}\n"))
            elif role == "tool":
                first = i == 0 or rest[i - 1].get("role") != "tool"
                last = i == len(rest) - 1 or rest[i + 1].get("role") != "tool"
                out.append((f"{IM_START}user" if first else "")
                           + f"\n<tool_response>\n{content}\n</tool_response>"
                           + (f"{IM_END}\n" if last else ""))
            else:
                out.append(f"{IM_START}{role}\n{content}{IM_END}\n")
        if not rest or rest[-1].get("role") != "assistant":
            out.append(f"{IM_START}assistant\n")
        return "".join(out)
