"""Prompt rendering with SmolLM2's real chat template; wire encoding helpers."""

from __future__ import annotations

import json

import pytest

from gateway import prompt
from gateway.schemas import decode_error
from gateway.streaming import encode_json, utc_timestamp
from services.errors import InvalidRequestError
from tests.gateway.fakes import SMOLLM2_TEMPLATE, resolved_model


def test_chat_renders_with_default_system_of_the_template():
    model = resolved_model()
    text = prompt.render(model, prompt.chat_messages(model, [{"role": "user", "content": "Hi"}]))
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                    "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_model_system_and_history_are_prepended():
    model = resolved_model(system="Be brief.")
    model.messages.add(role="user", content="Earlier")
    messages = prompt.chat_messages(model, [{"role": "user", "content": "Now"}])
    assert [m["role"] for m in messages] == ["system", "user", "user"]
    own = prompt.chat_messages(model, [{"role": "system", "content": "Mine"}])
    assert [m["content"] for m in own] == ["Earlier", "Mine"]


def test_generate_messages_system_override_and_context():
    model = resolved_model(system="Model system")
    model.messages.add(role="user", content="Earlier")
    assert prompt.generate_messages(model, "p", system="Mine", with_history=False) == [
        {"role": "system", "content": "Mine"}, {"role": "user", "content": "p"}]
    assert len(prompt.generate_messages(model, "p", system=None, with_history=True)) == 3


def test_model_without_templates_uses_prompt_as_is():
    model = resolved_model(chat_template="")
    assert prompt.render(model, prompt.generate_messages(model, "Once upon", system=None,
                                                         with_history=True)) == "Once upon"


def test_template_errors_are_400():
    with pytest.raises(InvalidRequestError, match="chat template: nope"):
        prompt.render_chat_template("{{ raise_exception('nope') }}", [])
    assert prompt.render_chat_template(SMOLLM2_TEMPLATE, [], add_generation_prompt=False) == ""


def test_json_is_go_shaped():
    assert encode_json({"a": "<&>", "b": "é"}) == '{"a":"\\u003c\\u0026\\u003e","b":"é"}'.encode()
    assert json.loads(encode_json({"a": "<&>"})) == {"a": "<&>"}


def test_utc_timestamp_trims_nanoseconds():
    assert utc_timestamp(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert utc_timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize("doc,message", [
    ("x", "invalid character 'x' looking for beginning of value"),
    ('{"a" 1}', "invalid character '1' after object key"),
    ('{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
    ("[1 2]", "invalid character '2' after array element"),
    ("{} x", "invalid character 'x' after top-level value"),
    ('{"a":', "unexpected EOF"),
])
def test_decoder_messages(doc, message):
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(doc)
    assert decode_error(info.value) == message
