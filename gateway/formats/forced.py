"""``tool_choice``: when a request forces a tool call, a grammar makes the model write one.

The call is forced in the model's own markup (Hermes ``<tool_call>`` JSON, Qwen3-Coder XML,
DeepSeek's markers, a harmony commentary message, or the template's tag before a JSON object),
so the format's usual parser reads it back; the arguments follow the tool's JSON Schema, which
the runner turns into grammar rules (``GenerateRequest.grammar_schemas``). llama-server forces
``tool_choice: required`` the same way; Ollama ignores ``tool_choice``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.errors import InvalidRequestError

_DEFAULT_TEXT_LIMIT = 256  # characters of a free-text XML value, when the schema sets none


@dataclass(frozen=True)
class ForcedCall:
    """A GBNF grammar (rule ``root``) and the named JSON Schemas its rules use."""

    grammar: str
    schemas: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolChoice:
    """``auto`` (the model decides), ``none`` (no tools offered), ``required`` (some tool must
    be called) or ``tool`` (the tool ``name`` must be called)."""

    mode: str = "auto"
    name: str = ""

    @property
    def forces(self) -> bool:
        return self.mode in ("required", "tool")

    def select(self, tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tools the prompt offers under this choice."""
        if self.mode == "none":
            return []
        if self.mode != "tool":
            return list(tools)
        chosen = [t for t in tools if (t.get("function") or {}).get("name") == self.name]
        if not chosen:
            raise InvalidRequestError(f"tool_choice names a tool that is not in tools: "
                                      f"{self.name!r}")
        return chosen[:1]


ForcedCallBuilder = Callable[[Sequence[dict[str, Any]]], ForcedCall]


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
        .replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return tool.get("function") or {}


def _arguments_schema(tool: dict[str, Any]) -> str:
    parameters = _function(tool).get("parameters")
    schema = parameters if isinstance(parameters, dict) and parameters else {"type": "object"}
    return json.dumps(schema, ensure_ascii=False)


def _alternatives(tools: Sequence[dict[str, Any]], build: Callable[[int, str], str],
                  extra: dict[str, str] | None = None) -> ForcedCall:
    if not tools:
        raise InvalidRequestError("tool_choice forces a tool call but no tools were given")
    rules = [build(i, _function(t).get("name", "")) for i, t in enumerate(tools)]
    schemas = {f"tool-args-{i}": _arguments_schema(t) for i, t in enumerate(tools)}
    return ForcedCall("root ::= " + " | ".join(f"( {r} )" for r in rules) + "\n",
                      {**schemas, **(extra or {})})


def json_calls(opening: str = "", closing: str = "") -> ForcedCallBuilder:
    """``opening {"name": "NAME", "arguments": {…}} closing`` (Hermes, templates' tags)."""
    def build(tools: Sequence[dict[str, Any]]) -> ForcedCall:
        return _alternatives(tools, lambda i, name: " ".join((
            literal(f'{opening}{{"name": {json.dumps(name, ensure_ascii=False)}, '
                    '"arguments": '), f"tool-args-{i}", literal("}" + closing))))
    return build


def wrapped_arguments(prefix: Callable[[str], str], suffix: str) -> ForcedCallBuilder:
    """``prefix(NAME) {arguments} suffix`` (DeepSeek's markers, harmony's header)."""
    def build(tools: Sequence[dict[str, Any]]) -> ForcedCall:
        return _alternatives(tools, lambda i, name: " ".join(
            part for part in (literal(prefix(name)), f"tool-args-{i}",
                              literal(suffix) if suffix else "") if part))
    return build


def xml_calls(tools: Sequence[dict[str, Any]]) -> ForcedCall:
    """Qwen3-Coder: ``<function=NAME>`` with one ``<parameter=KEY>`` per required key; string
    values are a line of text, other values JSON under the property's schema."""
    values: dict[str, str] = {}
    text_rules: list[str] = []

    def build(i: int, name: str) -> str:
        parameters = _function(tools[i]).get("parameters") or {}
        properties = parameters.get("properties") or {}
        parts = [literal(f"<tool_call>\n<function={name}>\n")]
        for j, key in enumerate(k for k in parameters.get("required") or [] if k in properties):
            prop = properties[key] if isinstance(properties[key], dict) else {}
            rule = f"tool-value-{i}-{j}"
            if prop.get("type", "string") == "string" and "enum" not in prop:
                limit = int(prop.get("maxLength") or _DEFAULT_TEXT_LIMIT)
                text_rules.append(f"{rule} ::= [^<\\n]{{1,{max(1, limit)}}}")
            else:
                values[rule] = json.dumps(prop, ensure_ascii=False)
            parts += [literal(f"<parameter={key}>\n"), rule, literal("\n</parameter>\n")]
        parts.append(literal("</function>\n</tool_call>"))
        return " ".join(parts)

    forced = _alternatives(tools, build, values)
    return ForcedCall(forced.grammar + "".join(r + "\n" for r in text_rules),
                      {k: v for k, v in forced.schemas.items()
                       if not k.startswith("tool-args-")})
