"""Ollama's model name grammar: defaults, part rules, display form, case-insensitive keys."""

from __future__ import annotations

import pytest

from services.errors import InvalidModelNameError
from services.names import ModelName, is_valid_name, parse_name


@pytest.mark.parametrize(("text", "parts"), [
    ("llama3", ("registry.ollama.ai", "library", "llama3", "latest")),
    ("llama3:8b", ("registry.ollama.ai", "library", "llama3", "8b")),
    ("u/m", ("registry.ollama.ai", "u", "m", "latest")),
    ("u/m:t", ("registry.ollama.ai", "u", "m", "t")),
    ("h:5000/u/m:t", ("h:5000", "u", "m", "t")),
    ("h:5000/u/m", ("h:5000", "u", "m", "latest")),
    ("https://example.com/ns/m:v1.2", ("example.com", "ns", "m", "v1.2")),
    ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m")),
    ("_x/m_1-2.3:T_a-g.4", ("registry.ollama.ai", "_x", "m_1-2.3", "T_a-g.4")),
])
def test_parse_fills_defaults(text: str, parts: tuple[str, str, str, str]) -> None:
    assert parse_name(text) == ModelName(*parts)


@pytest.mark.parametrize("text", [
    "", ":", "model:", "/model", "ns//m", "a b", "m@sha256", "m!", "bad name!",
    "-m", ".m", "m:-t", "m:.t", "ns.dot/m", "h/a/b/c", "ü", "m:t:u/", "h/ns/m:t/",
    "a" * 81, "m:" + "t" * 81, "h" * 351 + "/n/m",
    # Path traversal shapes: no part may start with "." and "/" never sits inside a part.
    "..", "../x", "a/../../b", "../../etc/passwd", "./m", "m:..", "h/../m", "..:t",
])
def test_invalid_names_raise(text: str) -> None:
    with pytest.raises(InvalidModelNameError, match="invalid model name"):
        parse_name(text)
    assert not is_valid_name(text)


def test_length_limits_are_inclusive() -> None:
    assert parse_name("a" * 80).model == "a" * 80
    assert parse_name("m:" + "t" * 80).tag == "t" * 80
    assert parse_name("h" * 350 + "/n/m").host == "h" * 350


@pytest.mark.parametrize(("text", "display"), [
    ("llama3", "llama3:latest"),
    ("library/llama3:8b", "llama3:8b"),
    ("REGISTRY.OLLAMA.AI/Library/Llama3", "Llama3:latest"),
    ("u/m", "u/m:latest"),
    ("example.com/library/m:t", "example.com/library/m:t"),
    ("h:5000/u/m:t", "h:5000/u/m:t"),
])
def test_display_is_shortest_with_tag(text: str, display: str) -> None:
    assert parse_name(text).display == display
    assert str(parse_name(text)) == display


def test_key_is_case_insensitive_full_name() -> None:
    a, b = parse_name("SmolLM2:135M"), parse_name("registry.ollama.ai/library/smollm2:135m")
    assert a != b and a.key == b.key == "registry.ollama.ai/library/smollm2:135m"
    assert a.full == "registry.ollama.ai/library/SmolLM2:135M"
