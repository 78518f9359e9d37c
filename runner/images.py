"""Images in a prompt: the ``[img-N]`` markers, decoding, and how image positions are keyed.

The gateway renders a prompt with Ollama's markers: ``[img-N]`` stands where image ``N`` of the
request goes. Here the prompt is split at those markers, each image is decoded to RGB
(``services.images``), and every KV position an image fills gets a *key*: a negative number
made of the image's content hash and the token's index inside the image. Keys sit in a slot's
token history beside real token ids, so the prefix reuse that skips a repeated conversation
start also skips a repeated image, and a different image (or a piece of one cut by a context
shift) can never pass for it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from services.errors import InvalidRequestError
from services.images import ImageError, decode

MARKER = re.compile(r"\[img-(\d+)\]")

_INDEX_BITS = 20  # up to ~1M tokens per image
_HASH_BITS = 40


@dataclass(frozen=True)
class Image:
    """One decoded image: RGB bytes row by row, and the sha256 of the bytes as sent."""

    width: int
    height: int
    rgb: bytes
    digest: str


def split_prompt(prompt: str, n_images: int) -> list[str | int]:
    """The prompt as text pieces and image indices, in order.

    Markers naming no image of the request stay text. Every image must be referenced.
    """
    pieces: list[str | int] = []
    position = 0
    for match in MARKER.finditer(prompt):
        index = int(match.group(1))
        if index >= n_images:
            continue
        if match.start() > position:
            pieces.append(prompt[position:match.start()])
        pieces.append(index)
        position = match.end()
    if position < len(prompt):
        pieces.append(prompt[position:])
    missing = sorted(set(range(n_images)) - {p for p in pieces if isinstance(p, int)})
    if missing:
        raise InvalidRequestError(f"image {missing[0]} is not referenced in the prompt "
                                  f"(it needs an [img-{missing[0]}] marker)")
    return pieces


def decode_image(data: bytes, index: int) -> Image:
    """Decode PNG, JPEG or WebP bytes to RGB; anything else is the request's 400."""
    try:
        width, height, rgb = decode(data)
    except ImageError as exc:
        raise InvalidRequestError(f"image {index} {exc}") from None
    return Image(width, height, rgb, hashlib.sha256(data).hexdigest())


def image_keys(digest: str, n_tokens: int) -> list[int]:
    """The keys of an image's ``n_tokens`` positions (negative: never a token id)."""
    base = (int(digest[:_HASH_BITS // 4], 16) << _INDEX_BITS) + 1
    return [-(base + i) for i in range(n_tokens)]


def key_index(key: int) -> int:
    """Which token of its image a key stands for (0 for the first)."""
    return (-key - 1) & ((1 << _INDEX_BITS) - 1)


def is_image(key: int) -> bool:
    return key < 0


def reusable(cache: list[int], prompt: list[int]) -> int:
    """How many leading positions of ``prompt`` a slot holding ``cache`` can keep.

    The common prefix, less at least the last position (its logits are needed), and never
    ending inside an image: image embeddings are decoded whole.
    """
    n = 0
    for a, b in zip(cache, prompt):
        if a != b:
            break
        n += 1
    n = min(n, len(prompt) - 1)
    if n > 0 and is_image(prompt[n]):
        n -= key_index(prompt[n])
    return n


def text_tokens(tokens: list[int]) -> list[int]:
    """``tokens`` without image positions (for samplers and Ollama's ``context``)."""
    return [t for t in tokens if t >= 0]
