"""Image paths in what the user types, for vision models (Ollama's ``extractFileData``).

``corral run llava "What is in ./photo.png?"`` and the REPL attach every path that names an
existing PNG, JPEG or WebP file: bare or quoted, absolute, ``./``-relative or ``~/``, with
shell-escaped spaces. The path leaves the prompt, the file's bytes go as a base64 image, and
``Added image './photo.png'`` goes to stderr. A path that names no file stays text.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

from services.api_client import ApiError

_PATH = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\|~/)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp)\b")
_ESCAPES = {"\\" + c: c for c in " ()[]{}$&;'*?~"} | {"\\\\": "\\"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", 0), (b"\xff\xd8\xff", 0), (b"WEBP", 8))
MAX_IMAGE_BYTES = 100 * 1024 * 1024


def file_names(text: str) -> list[str]:
    """Candidate image paths in ``text`` (some may name no file)."""
    return _PATH.findall(text)


def unescape(path: str) -> str:
    """A shell-escaped path (``my\\ cat.png``) as the file name it stands for."""
    return re.sub(r"\\[ ()\[\]{}$&;'*?~\\]", lambda m: _ESCAPES[m.group(0)], path)


def attach_images(text: str) -> tuple[str, list[str]]:
    """``text`` without the image paths it names, and those images as base64."""
    images = []
    for candidate in file_names(text):
        name = unescape(candidate)
        data = _read_image(Path(os.path.expanduser(name)))
        if data is None:
            continue
        print(f"Added image '{name}'", file=sys.stderr)
        for form in (f"'{name}'", f"'{candidate}'", f'"{name}"', f'"{candidate}"', candidate):
            text = text.replace(form, "")
        images.append(base64.b64encode(data).decode())
    return text.strip(), images


def _read_image(path: Path) -> bytes | None:
    """The file's bytes; None when it does not exist; an error when it is no usable image."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if not any(head[at:at + len(magic)] == magic for magic, at in _MAGIC):
                raise ApiError(f"Couldn't process file {str(path)!r}: it is not a PNG, JPEG "
                               f"or WebP image")
            if os.fstat(f.fileno()).st_size > MAX_IMAGE_BYTES:
                raise ApiError(f"Couldn't process file {str(path)!r}: file size exceeds "
                               f"maximum limit (100MB)")
            return head + f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ApiError(f"Couldn't process file {str(path)!r}: {exc.strerror}") from None
