"""Go's %q and %#v as Ollama prints them in errors and /api/show parameters."""

from __future__ import annotations

import pytest

from services.gofmt import go_quote, go_sharp_v, parameters_text


@pytest.mark.parametrize(("text", "quoted"), [
    ("bad name!", '"bad name!"'),
    ("", '""'),
    ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ("tab\there\nnl", '"tab\\there\\nnl"'),
    ("\x00\x7f", '"\\x00\\x7f"'),
    ("héllo wörld ✓", '"héllo wörld ✓"'),
    ("\u200b", '"\\u200b"'),
])
def test_go_quote_is_strconv_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@pytest.mark.parametrize(("value", "text"), [
    ("<|eot_id|>", '"<|eot_id|>"'), (1.0, "1"), (0.9, "0.9"), (24, "24"), (1e6, "1e+06"),
    (True, "true"), (False, "false"),
])
def test_sharp_v_of_json_values(value, text: str) -> None:
    assert go_sharp_v(value) == text


def test_parameters_text_pads_names_and_splits_lists() -> None:
    assert parameters_text({"stop": ["<|im_end|>", "User:"], "num_ctx": 4096.0}) == (
        'stop                           "<|im_end|>"\n'
        'stop                           "User:"\n'
        "num_ctx                        4096")
    assert parameters_text({}) == ""
