"""The tiny vision model (``scripts/make-tiny-vlm.py``) and test images, for every test tier."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make-tiny-vlm.py"
IMAGE_TOKENS = 16  # 64x64 pixels in 16x16 patches


def make_tiny_vlm(out_dir: Path) -> Path:
    """Run the builder script (as a user would) into ``out_dir``; returns it."""
    subprocess.run([sys.executable, str(SCRIPT), str(out_dir)], check=True,
                   capture_output=True, timeout=120)
    return out_dir


def image_bytes(color: tuple[int, int, int], *, size: tuple[int, int] = (48, 40),
                fmt: str = "PNG") -> bytes:
    """An image of ``color`` with a lattice of its complement (so it is not flat)."""
    from PIL import Image

    img = Image.new("RGB", size, color)
    inverse = tuple(255 - c for c in color)
    for x in range(0, size[0], 5):
        for y in range(0, size[1], 7):
            img.putpixel((x, y), inverse)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


RED = (220, 30, 30)
BLUE = (30, 40, 220)
