"""Image paths in prompts for vision models (``corral run`` and the REPL)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from services.api_client import ApiError
from services.cli.images import attach_images, file_names, unescape
from tests.vlm import RED, image_bytes


def test_paths_are_found_as_ollama_finds_them() -> None:
    text = ("see ./cat.png and /tmp/a\\ b.JPG, '~/pics/x.webp' or C:\\img.jpeg; "
            "not cat.png nor ./notes.txt")
    assert file_names(text) == ["./cat.png", "/tmp/a\\ b.JPG", "~/pics/x.webp",
                                "C:\\img.jpeg"]
    assert unescape("/tmp/a\\ b\\(1\\).png") == "/tmp/a b(1).png"


def test_existing_images_are_attached_and_leave_the_prompt(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    png = image_bytes(RED)
    (tmp_path / "cat.png").write_bytes(png)
    (tmp_path / "my cat.webp").write_bytes(image_bytes(RED, fmt="WEBP"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    text, images = attach_images("describe ./cat.png and '~/my\\ cat.webp' but ./gone.png")
    assert text == "describe  and  but ./gone.png"
    assert base64.b64decode(images[0]) == png and len(images) == 2
    assert capsys.readouterr().err.splitlines() == ["Added image './cat.png'",
                                                     "Added image '~/my cat.webp'"]


def test_a_file_that_is_no_image_is_an_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake.png").write_text("just text")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ApiError, match="not a PNG, JPEG or WebP image"):
        attach_images("what is ./fake.png")
