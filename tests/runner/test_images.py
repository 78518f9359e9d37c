"""Image markers and keys in the runner (no model needed)."""

from __future__ import annotations

import pytest

from runner.images import image_keys, is_image, key_index, reusable, split_prompt, text_tokens
from services.errors import InvalidRequestError


def test_prompts_split_at_the_markers_of_the_images_sent() -> None:
    assert split_prompt("a[img-1]b[img-0][img-7]c", 2) == ["a", 1, "b", 0, "[img-7]c"]
    assert split_prompt("[img-0][img-0]", 1) == [0, 0]
    with pytest.raises(InvalidRequestError, match=r"image 1 is not referenced.*\[img-1\]"):
        split_prompt("[img-0] only", 2)


def test_keys_are_negative_per_image_and_per_position() -> None:
    red, blue = image_keys("ab" * 32, 4), image_keys("cd" * 32, 4)
    assert all(is_image(k) for k in red + blue) and not set(red) & set(blue)
    assert [key_index(k) for k in red] == [0, 1, 2, 3]
    assert text_tokens([5, *red, 6]) == [5, 6]


def test_reuse_never_stops_inside_an_image() -> None:
    image = image_keys("ab" * 32, 4)
    prompt = [1, 2, *image, 3, 4]
    assert reusable(prompt, prompt) == len(prompt) - 1  # the last position is evaluated
    assert reusable([1, 2, *image[:2]], prompt) == 2  # half an image is not kept
    assert reusable([1, 2, *image[1:]], prompt) == 2  # nor one a shift cut the start off
    assert reusable([1, 2, *image_keys("ef" * 32, 4)], prompt) == 2
    assert reusable([1, 2, *image], [1, 2, *image, 3]) == 6
