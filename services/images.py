"""Decoding request images, shared by the gateway (which checks them) and runners (which use them).

Pillow decodes; only PNG, JPEG and WebP are opened (the formats Ollama's clients send and
OpenAI's ``data:`` URLs name). Errors say what is wrong in words a user can act on; the
caller prefixes which image of which message it was.
"""

from __future__ import annotations

import io

FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PIXELS = 50_000_000
"""Larger images are refused: 50 MP of RGB is 150 MB in memory. Anything smaller is accepted at
any size: the model's projector resizes it."""


class ImageError(ValueError):
    """Why bytes are not a usable image (``is not a PNG, JPEG or WebP image``, ...)."""


def decode(data: bytes, *, rgb: bool = True) -> tuple[int, int, bytes]:
    """``(width, height, RGB bytes row by row)``; ``rgb=False`` only checks (no pixels back)."""
    # Text-only processes never load Pillow.
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"is too large ({width}x{height} pixels; the limit is "
                                 f"{MAX_PIXELS // 1_000_000} megapixels)")
            img.load()
            return width, height, img.convert("RGB").tobytes() if rgb else b""
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("is not a PNG, JPEG or WebP image") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"could not be decoded: {exc}") from None
