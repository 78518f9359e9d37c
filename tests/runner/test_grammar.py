"""JSON Schema → GBNF for ``format`` (llama.cpp's converter, with strict JSON strings)."""

from __future__ import annotations

import pytest

from runner.grammar import grammar_for, schema_grammar
from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb


def test_schema_becomes_a_grammar_with_strict_strings():
    grammar = schema_grammar('{"type":"object","properties":{"city":{"type":"string"}},'
                             '"required":["city"]}')
    assert "root ::=" in grammar
    assert '"\\"city\\""' in grammar
    char = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert "\\x00-\\x1F" in char  # no raw control characters inside JSON strings


def test_request_grammar_wins_and_empty_means_unconstrained():
    assert grammar_for(pb.GenerateRequest(grammar='root ::= "a"', json_schema="{}")) == \
        'root ::= "a"'
    assert grammar_for(pb.GenerateRequest()) == ""
    assert "root ::= object" in grammar_for(pb.GenerateRequest(json_schema='{"type":"object"}'))


@pytest.mark.parametrize("schema", ['{"type":"nonsense"}', "[1]", "{oops", '{"$ref":"#/x"}'])
def test_unusable_schemas_are_invalid_requests(schema):
    with pytest.raises(InvalidRequestError, match="invalid JSON schema in format"):
        schema_grammar(schema)


def test_named_schemas_become_rules_the_grammar_references():
    request = pb.GenerateRequest(
        grammar='root ::= "<call>" args "</call>" city',
        grammar_schemas={"args": '{"type":"object","properties":{"n":{"type":"integer"}},'
                                 '"required":["n"]}',
                         "city": '{"type":"string"}'})
    grammar = grammar_for(request)
    rules = {line.split(" ::= ")[0] for line in grammar.splitlines()}
    assert {"root", "args", "city", "space"} <= rules
    assert "city ::= string" in grammar.splitlines()  # a primitive schema gets an alias
    assert grammar.endswith("\n")


def test_a_bad_named_schema_is_an_invalid_request():
    with pytest.raises(InvalidRequestError, match="invalid JSON schema for args"):
        grammar_for(pb.GenerateRequest(grammar="root ::= args",
                                       grammar_schemas={"args": '{"type":"nonsense"}'}))
