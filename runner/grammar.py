"""The grammar a request is constrained by: its GBNF, or one converted from its JSON Schema.

A GBNF grammar may come with named JSON Schemas (``grammar_schemas``): each becomes rules of
that name, so the gateway can force a tool call in a model's own markup around JSON arguments.

The conversion is llama.cpp's own json-schema-to-grammar, as shipped by llama-cpp-python. Its
Python port lets raw control characters into strings (the C++ original does not), which strict
JSON parsers reject, so the string-character rule is tightened to the C++ one.
"""

from __future__ import annotations

import functools
import json

from llama_cpp.llama_grammar import SchemaConverter, json_schema_to_gbnf

from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb

_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def grammar_for(request: pb.GenerateRequest) -> str:
    """GBNF for ``request`` ("" when unconstrained); InvalidRequestError for a bad schema."""
    if request.grammar:
        if request.grammar_schemas:
            return request.grammar + "\n" + schema_rules(tuple(sorted(
                request.grammar_schemas.items())))
        return request.grammar
    if request.json_schema:
        return schema_grammar(request.json_schema)
    return ""


@functools.lru_cache(maxsize=32)
def schema_grammar(schema: str) -> str:
    """The grammar for a JSON Schema text (cached: clients resend the same schema)."""
    try:
        parsed = json.loads(schema)
    except ValueError as exc:
        raise InvalidRequestError(f"invalid JSON schema in format: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequestError("invalid JSON schema in format: not an object")
    try:
        grammar: str = json_schema_to_gbnf(schema)  # llama_cpp leaves it unannotated
    except (AssertionError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise InvalidRequestError(f"invalid JSON schema in format: {exc}") from exc
    return grammar.replace(_LOOSE_CHAR, _STRICT_CHAR)


@functools.lru_cache(maxsize=32)
def schema_rules(schemas: tuple[tuple[str, str], ...]) -> str:
    """GBNF rules for named JSON Schemas: rule ``<name>`` matches JSON valid under its schema."""
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    aliases = []
    for name, text in schemas:
        try:
            schema = json.loads(text)
            rule = converter.visit(converter.resolve_refs(schema, name), name)
        except (AssertionError, KeyError, TypeError, ValueError, RecursionError) as exc:
            raise InvalidRequestError(f"invalid JSON schema for {name}: {exc}") from exc
        if rule != name:  # a primitive schema reuses a shared rule (``string``...)
            aliases.append(f"{name} ::= {rule}")
    rules = converter.format_grammar().replace(_LOOSE_CHAR, _STRICT_CHAR).rstrip("\n")
    return "\n".join([rules, *aliases]) + "\n"
