"""The options table and its two decoders behave like Ollama's FormatParams and FromMap."""

import pytest

from services.errors import InvalidRequestError
from services.options_table import (DEFAULTS, IGNORED, OPTIONS, coerce_api_option,
                                    coerce_api_options, deprecation_warning, is_current,
                                    is_deprecated, parse_parameter)


def test_defaults_match_ollama_head():
    assert DEFAULTS["temperature"] == 0.8
    assert DEFAULTS["top_k"] == 40 and DEFAULTS["top_p"] == 0.9
    assert DEFAULTS["seed"] == -1 and DEFAULTS["num_predict"] == -1
    assert DEFAULTS["repeat_penalty"] == 1.0 and DEFAULTS["repeat_last_n"] == 64
    assert DEFAULTS["num_keep"] == 4 and DEFAULTS["num_batch"] == 512
    assert DEFAULTS["main_gpu"] is None and DEFAULTS["use_mmap"] is None
    assert DEFAULTS["stop"] is None


def test_defaults_hold_only_current_options():
    assert "mirostat" not in DEFAULTS and "numa" not in DEFAULTS
    assert set(DEFAULTS) == {name for name in OPTIONS if is_current(name)}
    assert len(DEFAULTS) == 21  # with use_mlock, which Corral honours (Ollama dropped it)


@pytest.mark.parametrize("name,text,expected", [
    ("num_ctx", "8192", 8192), ("seed", "-1", -1), ("top_k", "+5", 5),
    ("temperature", "1", 1.0), ("temperature", "0.7", 0.7), ("top_p", ".5", 0.5),
    ("min_p", "5e-2", 0.05), ("temperature", "0x1p-1", 0.5),
    ("use_mmap", "true", True), ("use_mmap", "F", False), ("use_mmap", "1", True),
    ("use_mlock", "true", True),
    ("stop", "### User:", ["### User:"]), ("stop", "", [""]),
    ("main_gpu", "0", 0), ("draft_num_predict", "8", 8),
])
def test_parse_parameter_accepts_go_strconv_syntax(name, text, expected):
    value = parse_parameter(name, text)
    assert value == expected and type(value) is type(expected)


def test_float_parameters_keep_float32_precision_in_shortest_form():
    assert parse_parameter("temperature", "0.1234567891") == 0.12345679


@pytest.mark.parametrize("name,text,message", [
    ("num_ctx", "1.5", "invalid int value [1.5]"),
    ("num_ctx", " 1", "invalid int value [ 1]"),
    ("num_ctx", "1_000", "invalid int value [1_000]"),
    ("seed", "99999999999999999999", "invalid int value [99999999999999999999]"),
    ("temperature", "0.7 # hi", "invalid float value [0.7 # hi]"),
    ("temperature", "1e39", "invalid float value [1e39]"),
    ("temperature", "", "invalid float value []"),
    ("use_mmap", "yes", "invalid bool value [yes]"),
    ("use_mmap", "tRUE", "invalid bool value [tRUE]"),
])
def test_parse_parameter_rejects_bad_values(name, text, message):
    with pytest.raises(InvalidRequestError) as err:
        parse_parameter(name, text)
    assert err.value.message == message


@pytest.mark.parametrize("name", ["numa", "tfs_z", "mirostat", "Temperature",
                                  "num_gqa", ""])
def test_parse_parameter_unknown_names(name):
    with pytest.raises(InvalidRequestError, match=f"^unknown parameter '{name}'$"):
        parse_parameter(name, "1")


def test_parse_parameter_with_several_words_like_the_repl():
    assert parse_parameter("stop", ["a", "b"]) == ["a", "b"]
    assert parse_parameter("top_k", ["3", "x"]) == 3
    with pytest.raises(InvalidRequestError, match=r"^invalid int value \[x 3\]$"):
        parse_parameter("top_k", ["x", "3"])


def test_deprecated_parameters_warn():
    assert is_deprecated("mirostat") and is_deprecated("penalize_newline")
    assert not is_deprecated("numa") and not is_deprecated("temperature")
    assert deprecation_warning("mirostat") == "parameter mirostat is deprecated"


@pytest.mark.parametrize("name,value,expected", [
    ("num_ctx", 2048, 2048), ("num_ctx", 2048.9, 2048), ("seed", -3.7, -3),
    ("temperature", 1, 1.0), ("temperature", 0.2, 0.2), ("use_mmap", False, False),
    ("stop", ["a", "b"], ["a", "b"]), ("stop", [], []),
])
def test_coerce_api_option_accepts_json_types(name, value, expected):
    result = coerce_api_option(name, value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("name,value", [
    ("nonsense", 1), ("mirostat", 1), ("numa", True), ("temperature", None), ("stop", None),
])
def test_coerce_api_option_ignores_unknown_and_null(name, value):
    assert coerce_api_option(name, value) is IGNORED


@pytest.mark.parametrize("name,value,message", [
    ("num_ctx", "2048", 'option "num_ctx" must be of type integer'),
    ("num_ctx", True, 'option "num_ctx" must be of type integer'),
    ("temperature", "0.5", 'option "temperature" must be of type float32'),
    ("temperature", False, 'option "temperature" must be of type float32'),
    ("use_mmap", 1, 'option "use_mmap" must be of type boolean'),
    ("stop", "###", 'option "stop" must be of type array'),
    ("stop", ["a", 1], 'option "stop" must be of an array of strings'),
])
def test_coerce_api_option_type_errors(name, value, message):
    with pytest.raises(InvalidRequestError) as err:
        coerce_api_option(name, value)
    assert err.value.message == message


def test_coerce_api_options_drops_ignored_keys():
    assert coerce_api_options({"top_k": 3.0, "bogus": "x", "seed": None}) == {"top_k": 3}
    assert coerce_api_options(None) == {}
