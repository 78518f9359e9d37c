"""Rendering a conversation in the harmony format (gpt-oss).

A system message (identity, dates, reasoning effort, channels), a developer message holding
the request's system text as ``# Instructions`` and the tools as a TypeScript namespace, then
the turns. Reasoning of earlier turns is dropped; reasoning after the last user message (a
tool-calling loop in progress) is kept, as the format asks.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Sequence
from typing import Any

Message = dict[str, Any]
_BUILTINS = frozenset({"browser.open", "browser.search", "browser.find", "python"})


def harmony_name(name: str) -> str:
    """A TypeScript identifier for a tool name: separators become ``_``, other characters go."""
    kept = "".join("_" if c in " -." else c for c in name
                   if c in " -._$" or unicodedata.category(c)[0] in "LN")
    kept = kept or "unnamed"
    return "_" + kept if kept[0].isdigit() else kept


def harmony_names(tools: Sequence[dict[str, Any]]) -> dict[str, str]:
    """User tool name → the name the prompt uses (unique, ``f``, ``f_2``, ``f_3`` …)."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for tool in tools:
        name = (tool.get("function") or {}).get("name") or ""
        if not name or name in mapping:
            continue
        base = name if name in _BUILTINS else harmony_name(name)
        candidate, count = base, 2
        while candidate in taken:
            candidate, count = f"{base}_{count}", count + 1
        mapping[name] = candidate
        taken.add(candidate)
    return mapping


def ts_type(schema: Any) -> str:
    """A JSON Schema as the TypeScript type harmony describes tools with."""
    if not isinstance(schema, dict):
        return "any"
    if isinstance(schema.get("enum"), list):
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"]) or "any"
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(ts_type(option) for option in schema[key]) or "any"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": k}) for k in kind) or "any"
    if kind == "array":
        items = ts_type(schema["items"]) if "items" in schema else "any"
        return f"Array<{items}>" if " | " in items else f"{items}[]"
    if kind == "object" and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required") or [])
        fields = ", ".join(f"{k}{'' if k in required else '?'}: {ts_type(v)}"
                           for k, v in schema["properties"].items())
        return "{ " + fields + " }"
    return {"string": "string", "integer": "number", "number": "number", "boolean": "boolean",
            "null": "null", "object": "object"}.get(str(kind), "any")


def _tool_type(name: str, function: dict[str, Any]) -> str:
    out = f"// {function['description']}\n" if function.get("description") else ""
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    if not properties:
        return out + f"type {name} = () => any;\n\n"
    required = set(parameters.get("required") or [])
    lines = []
    for key, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        if prop.get("description"):
            lines.append(f"// {prop['description']}\n")
        default = f" // default: {json.dumps(prop['default'])}" if "default" in prop else ""
        lines.append(f"{key}{'' if key in required else '?'}: {ts_type(prop)},{default}\n")
    return out + f"type {name} = (_: {{\n{''.join(lines)}}}) => any;\n\n"


def _system(effort: str, has_tools: bool, today: dt.date) -> str:
    calls = ("\nCalls to these tools must go to the commentary channel: 'functions'."
             if has_tools else "")
    return ("<|start|>system<|message|>You are ChatGPT, a large language model trained by "
            f"OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: {today.isoformat()}\n\n"
            f"Reasoning: {effort}\n\n# Valid channels: analysis, commentary, final. Channel "
            f"must be included for every message.{calls}<|end|>")


def _developer(instructions: str, tools: Sequence[dict[str, Any]], names: dict[str, str]) -> str:
    if not instructions and not tools:
        return ""
    parts = [f"# Instructions\n\n{instructions}"] if instructions else []
    if tools:
        types = "".join(_tool_type(names.get((t.get("function") or {}).get("name", ""), "f"),
                                   t.get("function") or {}) for t in tools)
        parts.append(f"# Tools\n\n## functions\n\nnamespace functions {{\n\n{types}"
                     "} // namespace functions")
    return "<|start|>developer<|message|>" + "\n\n".join(parts) + "<|end|>"


def render_harmony(messages: Sequence[Message], *, tools: Sequence[dict[str, Any]] = (),
                   effort: str = "medium", today: dt.date | None = None) -> str:
    names = harmony_names(tools)
    instructions = "\n\n".join(m.get("content", "") for m in messages
                               if m.get("role") in ("system", "developer"))
    turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    out = [_system(effort, bool(tools), today or dt.date.today()),
           _developer(instructions, tools, names)]
    last_user = max((i for i, m in enumerate(turns) if m.get("role") == "user"), default=-1)
    call_names: dict[str, str] = {}
    last_call = ""
    for i, message in enumerate(turns):
        role = message.get("role")
        if role == "assistant":
            prefill = i == len(turns) - 1
            out.append(_assistant(message, names, keep_thinking=i > last_user, prefill=prefill))
            for call in message.get("tool_calls") or []:
                last_call = (call.get("function") or {}).get("name", "")
                if call.get("id"):
                    call_names[call["id"]] = last_call
        elif role == "tool":
            name = (message.get("tool_name") or call_names.get(message.get("tool_call_id", ""))
                    or last_call)
            out.append(f"<|start|>functions.{names.get(name, harmony_name(name))} to=assistant"
                       f"<|channel|>commentary<|message|>{message.get('content', '')}<|end|>")
        else:
            out.append(f"<|start|>{role}<|message|>{message.get('content', '')}<|end|>")
    if not turns or turns[-1].get("role") != "assistant":
        out.append("<|start|>assistant")
    return "".join(out)


def _assistant(message: Message, names: dict[str, str], *, keep_thinking: bool,
               prefill: bool) -> str:
    out = []
    calls = message.get("tool_calls") or []
    content, thinking = message.get("content", ""), message.get("thinking", "")
    open_end = "" if prefill and not calls else "<|end|>"
    if thinking and keep_thinking:
        end = open_end if not content and not calls else "<|end|>"
        out.append(f"<|start|>assistant<|channel|>analysis<|message|>{thinking}{end}")
    if content:
        channel = "commentary" if calls else "final"
        out.append(f"<|start|>assistant<|channel|>{channel}<|message|>{content}"
                   + ("<|end|>" if calls else open_end))
    for call in calls:
        function = call.get("function") or {}
        name = function.get("name", "")
        arguments = json.dumps(function.get("arguments") or {}, ensure_ascii=False)
        out.append(f"<|start|>assistant<|channel|>commentary to=functions."
                   f"{names.get(name, harmony_name(name))} <|constrain|>json<|message|>"
                   f"{arguments}<|call|>")
    return "".join(out)
