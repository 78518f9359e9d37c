"""The Go-compatibility codec prints and decodes as Go (hence Ollama) does, byte for byte.

Where the copies it replaced disagreed, the case that settled it is named in the test: the codec
follows Go (``strconv``, ``fmt``, ``encoding/json``), not whichever copy was there.
"""

from __future__ import annotations

import json
import math

import pytest

from services.errors import InvalidRequestError
from services.gocodec import (encode_json, format_float, go_json_value, go_quote, go_quote_char,
                              go_sharp_v, go_type_name, go_value_text, json_float, json_kind,
                              json_string, parameters_text, typed_field, unmarshal_error,
                              unmarshal_error_text, whole_numbers_as_ints)

# -- strings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "quoted"), [
    ("bad name!", '"bad name!"'),
    ("", '""'),
    ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ("tab\there\nnl", '"tab\\there\\nnl"'),
    ("\a\b\f\r\v", '"\\a\\b\\f\\r\\v"'),
    ("\x00\x7f", '"\\x00\\x7f"'),
    ("héllo wörld ✓", '"héllo wörld ✓"'),
    ("\u200b", '"\\u200b"'),
    ("😀", '"😀"'),
    ("\U000e0001", '"\\U000e0001"'),
    ("<&>", '"<&>"'),
])
def test_go_quote_is_strconv_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_go_quote_is_not_json_dumps() -> None:
    # The REPL and the embed handlers quoted with json.dumps; Go's %q writes \x01, not \u0001,
    # escapes DEL and keeps no invisible rune raw.
    assert go_quote("a\x01b") == '"a\\x01b"' != json.dumps("a\x01b")
    assert go_quote("\x7f") == '"\\x7f"' != json.dumps("\x7f", ensure_ascii=False)
    assert go_quote("\u2028") == '"\\u2028"'


@pytest.mark.parametrize(("char", "quoted"), [
    ("x", "'x'"), ("1", "'1'"), ('"', "'\"'"), ("\\", "'\\\\'"), ("\t", "'\\t'"),
    ("\x01", "'\\x01'"),
    # Python's repr (the copy in the validation layer) wrote "'" here; Go's quoteChar writes '\''
    ("'", "'\\''"),
    # Go names the first byte of a UTF-8 sequence, read as a rune: é is C3 A9, so 'Ã'
    ("é", "'Ã'"), ("✓", "'â'"),
])
def test_go_quote_char_is_encoding_json_quote_char(char: str, quoted: str) -> None:
    assert go_quote_char(char) == quoted


# -- kinds and type names ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind", "go_type"), [
    ("x", "string", "string"), (True, "bool", "bool"), (False, "bool", "bool"),
    (1, "number", "float64"), (1.5, "number", "float64"), ([1], "array", "[]interface {}"),
    ({"a": 1}, "object", "map[string]interface {}"), (None, "null", "<nil>"),
])
def test_json_kind_and_go_type_of_decoded_json(value, kind: str, go_type: str) -> None:
    assert json_kind(value) == kind
    assert go_type_name(value) == go_type


def test_kind_and_type_of_what_json_cannot_hold() -> None:
    assert json_kind((1, 2)) == "value"
    assert json_kind(b"x") == "value"
    assert go_type_name((1, 2)) == "tuple"


# -- unmarshal errors ----------------------------------------------------------------------------


def test_unmarshal_error_text_names_the_struct_field() -> None:
    assert unmarshal_error_text("x", "GenerateRequest.context", "[]int") == (
        "json: cannot unmarshal string into Go struct field GenerateRequest.context of type []int")
    assert unmarshal_error_text(None, "ChatRequest.messages", "api.Message") == (
        "json: cannot unmarshal null into Go struct field ChatRequest.messages of type api.Message")


def test_unmarshal_error_text_names_a_literal_that_does_not_fit() -> None:
    assert unmarshal_error_text(4294967296, "Options.num_ctx", "int32", literal=True) == (
        "json: cannot unmarshal number 4294967296 into Go struct field Options.num_ctx of type "
        "int32")
    assert unmarshal_error_text(1.5, "X.n", "int", literal=True).startswith(
        "json: cannot unmarshal number 1.5 into")


def test_unmarshal_error_text_for_a_top_level_value() -> None:
    assert unmarshal_error_text([1], None, "api.GenerateRequest") == (
        "json: cannot unmarshal array into Go value of type api.GenerateRequest")
    assert unmarshal_error_text("1e999", None, "float64", literal=True) == (
        "json: cannot unmarshal number 1e999 into Go value of type float64")


def test_unmarshal_error_is_the_requests_400() -> None:
    error = unmarshal_error(7, "ChatRequest.tools", "api.Tools")
    assert isinstance(error, InvalidRequestError)
    assert error.http_status == 400
    assert error.message == (
        "json: cannot unmarshal number into Go struct field ChatRequest.tools of type api.Tools")


# -- typed fields --------------------------------------------------------------------------------


def test_typed_field_returns_the_value_or_the_default() -> None:
    body = {"model": "m", "stream": False, "n": 3, "t": 0.5, "o": {}, "a": [], "nil": None}
    assert typed_field(body, "R", "model", "string") == "m"
    assert typed_field(body, "R", "stream", "bool", default=True) is False
    assert typed_field(body, "R", "n", "int") == 3
    assert typed_field(body, "R", "n", "number") == 3
    assert typed_field(body, "R", "t", "number") == 0.5
    assert typed_field(body, "R", "o", "object", default={"x": 1}) == {}
    assert typed_field(body, "R", "a", "array") == []
    assert typed_field(body, "R", "absent", "string", default="") == ""
    assert typed_field(body, "R", "nil", "array", default=[]) == []  # null means absent, as in Go


@pytest.mark.parametrize(("value", "kind", "go_type", "message"), [
    (5, "string", None, "number into Go struct field R.f of type string"),
    ("5", "int", None, "string into Go struct field R.f of type int"),
    (True, "int", None, "bool into Go struct field R.f of type int"),
    (True, "number", "float32", "bool into Go struct field R.f of type float32"),
    ("x", "bool", None, "string into Go struct field R.f of type bool"),
    ([], "object", None, "array into Go struct field R.f of type map[string]interface {}"),
    ({}, "array", None, "object into Go struct field R.f of type []interface {}"),
    ("x", "number", None, "string into Go struct field R.f of type float64"),
    ({}, "object", "*openai.StreamOptions", None),  # the right kind passes, whatever the Go type
    # Go names the literal only when a number does not fit a numeric field: the /v1 copy named
    # it for a number sent to a string field too, the native copy never named it.
    (1.5, "int", None, "number 1.5 into Go struct field R.f of type int"),
    (2.0, "int", "*int", "number 2.0 into Go struct field R.f of type *int"),
])
def test_typed_field_refuses_in_gos_words(value, kind: str, go_type, message) -> None:
    if message is None:
        assert typed_field({"f": value}, "R", "f", kind, go_type) == value
        return
    with pytest.raises(InvalidRequestError) as caught:
        typed_field({"f": value}, "R", "f", kind, go_type)
    assert caught.value.message == f"json: cannot unmarshal {message}"


# -- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (4096.0, "4096"), (1048576.0, "1.048576e+06"), (999999.0, "999999"), (0.7, "0.7"),
    (1.0, "1"), (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (0.0, "0"),
    (-0.0, "-0"), (123456.5, "123456.5"), (1e21, "1e+21"), (1.5e-300, "1.5e-300"),
    (float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
])
def test_format_float_is_fmt_percent_v_of_float64(value: float, text: str) -> None:
    assert format_float(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (1.5, "1.5"), (100.0, "100"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
    (0.000001, "0.000001"), (1e-7, "1e-7"), (1.25e-10, "1.25e-10"), (-3e25, "-3e+25"),
    (0.0, "0"), (-0.0, "-0"), (1048576.0, "1048576"),
])
def test_json_float_is_encoding_json_float64(value: float, text: str) -> None:
    assert json_float(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_json_float_refuses_what_go_refuses(value: float) -> None:
    with pytest.raises(ValueError, match="json: unsupported value: "):
        json_float(value)


def test_whole_numbers_as_ints_matches_gos_json_numbers() -> None:
    converted = whole_numbers_as_ints({"num_ctx": 4096.0, "stop": ["x"], "t": 0.5,
                                       "nested": [{"k": 2.0}], "flag": True})
    assert converted == {"num_ctx": 4096, "stop": ["x"], "t": 0.5, "nested": [{"k": 2}],
                         "flag": True}
    assert type(converted["num_ctx"]) is int and converted["flag"] is True
    # The show handler stopped at 2**63, the registry at 1e21. Go's encoder writes whole
    # float64s as plain digits up to 1e21, so 1e20 must become an int to print the same.
    assert whole_numbers_as_ints(1e20) == 10**20
    assert json.dumps(whole_numbers_as_ints(1e20)) == json_float(1e20)
    assert isinstance(whole_numbers_as_ints(1e21), float)
    assert math.isnan(whole_numbers_as_ints(float("nan")))
    assert whole_numbers_as_ints(float("inf")) == float("inf")


def test_go_json_value_makes_every_number_a_float64() -> None:
    assert go_json_value({"a": 1, "b": [2, True, None, "s"], 3: (4,)}) == {
        "a": 1.0, "b": [2.0, True, None, "s"], "3": [4.0]}
    assert go_json_value(True) is True


# -- whole JSON documents ------------------------------------------------------------------------


def test_encode_json_escapes_html_and_keeps_utf8() -> None:
    assert encode_json({"a": "<&>", "b": "é", "c": "\u2028\u2029"}) == (
        '{"a":"\\u003c\\u0026\\u003e","b":"é","c":"\\u2028\\u2029"}'.encode())
    assert json.loads(encode_json({"a": "<&>"})) == {"a": "<&>"}


@pytest.mark.parametrize(("text", "encoded"), [
    ("<a&b>", '"\\u003ca\\u0026b\\u003e"'), ("é✓", '"é✓"'), ('q"\\', '"q\\"\\\\"'),
    ("\n\r\t", '"\\n\\r\\t"'), ("\x01\x1f", '"\\u0001\\u001f"'),
    ("\u2028\u2029", '"\\u2028\\u2029"'),
    # the template's copy wrote \u0008 and \u000c, as Go did before 1.22; Ollama's Go writes \b \f
    ("\b\f", '"\\b\\f"'),
])
def test_json_string_is_encoding_json_string(text: str, encoded: str) -> None:
    assert json_string(text) == encoded
    assert encode_json(text) == encoded.encode()


def test_encode_json_as_a_json_encoder_and_sorted() -> None:
    assert encode_json([1, "x"], newline=True) == b'[1,"x"]\n'
    assert encode_json({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'
    assert encode_json({"b": 1, "a": 2}) == b'{"b":1,"a":2}'


# -- %v and %#v ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (4096, "4096"), (1048576, "1.048576e+06"), (0.7, "0.7"), (True, "true"), (False, "false"),
    ("<|eot_id|>", "<|eot_id|>"), (None, "<nil>"),
    # lists and maps as Go's %v prints []interface{} and map[string]interface{}: the REPL's
    # copy printed list items with Python's str (1.0, True), the show screen's printed None as
    # "NoneType"
    (["a", 1.0, True], "[a 1 true]"), ({"b": "x", "a": 1}, "map[a:1 b:x]"), ([], "[]"),
    ([["x"], None], "[[x] <nil>]"),
])
def test_go_value_text_is_percent_v_of_decoded_json(value, text: str) -> None:
    assert go_value_text(value) == text


@pytest.mark.parametrize(("value", "text"), [
    ("<|eot_id|>", '"<|eot_id|>"'), (1.0, "1"), (0.9, "0.9"), (24, "24"), (1e6, "1e+06"),
    (True, "true"), (False, "false"), ("a\nb", '"a\\nb"'),
])
def test_sharp_v_of_json_values(value, text: str) -> None:
    assert go_sharp_v(value) == text


def test_parameters_text_pads_names_and_splits_lists() -> None:
    assert parameters_text({"stop": ["<|im_end|>", "User:"], "num_ctx": 4096.0}) == (
        'stop                           "<|im_end|>"\n'
        'stop                           "User:"\n'
        "num_ctx                        4096")
    assert parameters_text({}) == ""
