"""Suite-wide fixtures: no developer environment leaks into tests."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.postgres"]  # the session's PostgreSQL, for the tests that need one


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop OLLAMA_* / CORRAL_* variables so a developer's settings cannot change results."""
    for key in list(os.environ):
        if key.startswith(("OLLAMA_", "CORRAL_")):
            monkeypatch.delenv(key, raising=False)
