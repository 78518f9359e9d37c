"""Images on generate and chat before a runner sees them: checks, markers, fitting."""

from __future__ import annotations

import pytest

from gateway.images import (IMAGE_TOKENS_ESTIMATE, MESSAGE_INDEX, decode_images, fit_messages,
                            prefix_markers, tag_images)
from services.errors import InvalidRequestError
from tests.vlm import RED, b64, image_bytes


def test_images_become_markers_in_order_replacing_img_placeholders() -> None:
    tagged, images = tag_images([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Compare", "images": ["A", "B"]},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "And [img] versus the first?", "images": ["C"],
         MESSAGE_INDEX: 3}])
    assert [m["content"] for m in tagged] == [
        "Be brief.", "[img-0][img-1]Compare", "Sure.", "And [img-2] versus the first?"]
    assert images == ["A", "B", "C"]
    assert all(MESSAGE_INDEX not in m for m in tagged)


def test_raw_prompts_get_the_markers_they_lack() -> None:
    assert prefix_markers("Look at [img-1] please", 2) == "[img-0]Look at [img-1] please"
    assert prefix_markers("plain", 0) == "plain"


async def test_bad_images_name_the_message_and_the_image() -> None:
    good, bad = b64(image_bytes(RED)), b64(b"GIF89a? no")
    messages = [{"role": "user", "content": "x", "images": [good]},
                {"role": "user", "content": "y", "images": [good, bad]}]
    with pytest.raises(InvalidRequestError) as caught:
        await decode_images(messages, chat=True)
    assert caught.value.message == "message 1: image 1 is not a PNG, JPEG or WebP image"
    messages[1][MESSAGE_INDEX] = 4  # an OpenAI message that became several native ones
    with pytest.raises(InvalidRequestError, match="^message 4: image 1 is not"):
        await decode_images(messages, chat=True)
    truncated = b64(image_bytes(RED)[:80])
    with pytest.raises(InvalidRequestError, match="^image 0 could not be decoded"):
        await decode_images([{"images": [truncated]}], chat=False)
    decoded = await decode_images(messages[:1], chat=True)
    assert decoded == {good: image_bytes(RED)}
    assert await decode_images([{"role": "user", "content": "no images"}], chat=True) == {}


async def test_fitting_counts_each_image_as_ollama_does() -> None:
    messages = [{"role": "system", "content": "s"},
                {"role": "user", "content": "old", "images": ["A", "B"]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "new", "images": ["C"]}]

    async def tokenize(text: str, add_special: bool) -> list[int]:
        return [0] * len(text)

    def render(selected: list[dict]) -> str:
        return "|".join(m["content"] for m in tag_images(selected)[0])

    roomy = 4 * IMAGE_TOKENS_ESTIMATE
    assert await fit_messages(messages, render, tokenize, roomy) == (
        "s|[img-0][img-1]old|ok|[img-2]new", 0)
    text, dropped = await fit_messages(messages, render, tokenize, 2 * IMAGE_TOKENS_ESTIMATE)
    assert (text, dropped) == ("s|ok|[img-0]new", 1)
    text, dropped = await fit_messages(messages, render, tokenize, 10)
    assert text == "s|[img-0]new"  # the last message always stays
