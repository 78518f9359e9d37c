"""Option merging and keep_alive parsing (§3, §1.14)."""

from __future__ import annotations

import math

import pytest

from gateway.options import ModelOptions, decode_options, parse_keep_alive
from services.errors import InvalidRequestError


def test_precedence_defaults_modelfile_request():
    merged = ModelOptions.merge({"temperature": 0.2, "stop": ["<end>"], "num_ctx": 8192.0},
                                {"temperature": 0.5, "top_k": 3.9, "unknown": 1, "seed": None},
                                num_ctx=4096)
    assert merged.values["temperature"] == 0.5 and merged.values["top_k"] == 3
    assert merged.values["stop"] == ["<end>"] and merged.num_ctx == 8192
    assert merged.values["top_p"] == 0.9 and merged.values["seed"] == -1


def test_runner_request_mapping():
    request = ModelOptions.merge({}, {"seed": 7, "num_predict": 10}, num_ctx=2048) \
        .generate_request("hi", context=[1])
    assert request.sampling.seed == 7 and request.num_predict == 10 and request.num_keep == 4
    assert request.sampling.HasField("temperature") and request.parse_special
    unset = ModelOptions.merge({}, {}, num_ctx=2048).generate_request("hi")
    assert not unset.sampling.HasField("seed") and not unset.HasField("num_predict")


@pytest.mark.parametrize("options,message", [
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"top_k": "1"}, 'option "top_k" must be of type integer'),
    ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
    ({"num_predict": True}, 'option "num_predict" must be of type integer'),
    ({"stop": "x"}, 'option "stop" must be of type array'),
    ({"stop": ["x", 1]}, 'option "stop" must be of an array of strings'),
])
def test_wrong_types(options, message):
    with pytest.raises(InvalidRequestError) as info:
        decode_options(options)
    assert info.value.message == message and info.value.http_status == 400


@pytest.mark.parametrize("value,seconds", [
    (None, None), (0, 0.0), (1.5, 1.5), (-1, math.inf), ("5m", 300.0), ("1h30m", 5400.0),
    ("300ms", 0.3), ("-1m", math.inf), ("0", 0.0),
])
def test_keep_alive_values(value, seconds):
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value,message", [
    ("10", 'time: missing unit in duration "10"'),
    ("soon", 'time: invalid duration "soon"'),
    (True, "Unsupported type: 'bool'"),
    ([1], "Unsupported type: '[]interface {}'"),
])
def test_keep_alive_errors(value, message):
    with pytest.raises(InvalidRequestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_keep_alive(value)
