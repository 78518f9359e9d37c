"""Images on generate and chat: checked before a runner is held, then placed in the prompt.

* ``decode_images``: every image of the request, base64 to bytes, decoded once with Pillow in a
  thread, so data that is not an image, is truncated or is in another format is a 400 naming
  the message (and the image) before any model loads. The runner decodes the bytes again.
* ``tag_images``: Ollama's ``imageTaggedMessages``. Each image of the rendered messages becomes
  the marker ``[img-N]`` (N counting over those messages), replacing a literal ``[img]`` in the
  content or put in front of it; the runner puts the image's embeddings where its marker is.
* ``fit_messages``: dropping the oldest messages until the prompt fits, as for text, with
  Ollama's estimate of 768 tokens per image (the runner knows the real count and refuses a
  prompt that still does not fit).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from typing import Any

from gateway import fitting
from services.errors import InvalidRequestError
from services.images import ImageError, decode

MESSAGE_INDEX = "_message_index"
"""Set by the /v1 translations on native messages: the index of the message the client sent
(one OpenAI message may become several native ones)."""
IMAGE_TOKENS_ESTIMATE = 768  # Ollama's chatPrompt: "Clip images are represented as 768 tokens"


def has_images(messages: Sequence[dict[str, Any]]) -> bool:
    return any(m.get("images") for m in messages)


async def decode_images(messages: Sequence[dict[str, Any]], *, chat: bool) -> dict[str, bytes]:
    """Every image of ``messages`` as bytes, by its base64 text; a bad one is the 400."""
    labelled: dict[str, str] = {}  # base64 text -> where it is, for the error message
    for i, message in enumerate(messages):
        for k, text in enumerate(message.get("images") or ()):
            where = f"message {message.get(MESSAGE_INDEX, i)}: image {k}" if chat \
                else f"image {k}"
            labelled.setdefault(text, where)
    if not labelled:
        return {}
    return await asyncio.to_thread(_decode_all, labelled)


def _decode_all(labelled: dict[str, str]) -> dict[str, bytes]:
    images = {}
    for text, where in labelled.items():
        data = base64.b64decode(text.replace("\r", "").replace("\n", ""))
        try:
            decode(data, rgb=False)
        except ImageError as exc:
            raise InvalidRequestError(f"{where} {exc}") from None
        images[text] = data
    return images


def tag_images(messages: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages to render (images as ``[img-N]`` in their content) and the images in
    marker order."""
    tagged: list[dict[str, Any]] = []
    images: list[str] = []
    for message in messages:
        message = {k: v for k, v in message.items() if k != MESSAGE_INDEX}
        content, prefix = message.get("content") or "", ""
        for image in message.get("images") or ():
            marker = f"[img-{len(images)}]"
            images.append(image)
            if "[img]" in content:
                content = content.replace("[img]", marker, 1)
            else:
                prefix += marker
        if message.get("images"):
            message["content"] = prefix + content
        tagged.append(message)
    return tagged, images


def prefix_markers(prompt: str, n_images: int) -> str:
    """A raw or fill-in-the-middle prompt with a marker, in front, for each image it lacks."""
    missing = "".join(f"[img-{i}]" for i in range(n_images) if f"[img-{i}]" not in prompt)
    return missing + prompt


async def fit_messages(messages: Sequence[dict[str, Any]],
                       render: Callable[[list[dict[str, Any]]], str],
                       tokenize: fitting.Tokenize, limit: int) -> tuple[str, int]:
    """``fitting.fit_messages``, counting each image of the kept messages as 768 tokens."""
    return await fitting.fit_messages(messages, render, tokenize, limit, reserve=_image_tokens)


def _image_tokens(kept: list[dict[str, Any]]) -> int:
    return IMAGE_TOKENS_ESTIMATE * sum(len(m.get("images") or ()) for m in kept)
