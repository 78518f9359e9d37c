"""``corral run``'s flag decoding, worded as Ollama's CLI words it."""

import pytest

from services.cli.parser import UsageError
from services.cli.run import think_value


@pytest.mark.parametrize(("text", "value"), [("", True), ("true", True), ("false", False),
                                             ("high", "high"), ("max", "max")])
def test_think_value(text: str, value) -> None:
    assert think_value(text) == value


@pytest.mark.parametrize(("text", "quoted"), [("hot", '"hot"'), ('a"b', '"a\\"b"')])
def test_bad_think_value_is_quoted_with_percent_q(text: str, quoted: str) -> None:
    with pytest.raises(UsageError) as caught:
        think_value(text)
    assert str(caught.value) == (f"invalid value for --think: {quoted} (must be true, false, "
                                 "high, medium, low, or max)")
