"""The embedded SmolLM2 model: registered into an empty store once, never duplicated."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from registry import embedded
from registry.embedded import EMBEDDED_NAME, ensure_embedded_model
from tests.registry.conftest import open_store


async def test_registers_once_across_restarts(tmp_path: Path, smollm2_file: Path) -> None:
    models_dir = tmp_path / "models"
    async with open_store(models_dir) as store:
        assert await ensure_embedded_model(store, enabled=True)
    async with open_store(models_dir) as store:  # a second start of the registry
        assert not await ensure_embedded_model(store, enabled=True)
        (model,) = await store.list_models()
        resolved = await store.resolve(EMBEDDED_NAME)
    assert model.name.display == "smollm2:135m"
    assert model.details.family == "llama" and model.details.quantization_level == "Q4_1"
    assert model.details.parameter_size == "134.52M" and model.details.context_length == 8192
    assert model.size > smollm2_file.stat().st_size
    assert resolved.model_path.stat().st_size == smollm2_file.stat().st_size
    assert "im_start" in resolved.chat_template and resolved.template == ""
    assert len(list((models_dir / "blobs").iterdir())) == 2  # weights + config


async def test_disabled_leaves_store_empty(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        assert not await ensure_embedded_model(store, enabled=False)
        assert await store.is_empty()


async def test_missing_package_is_logged_not_fatal(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "embedded_model_file", lambda: None)
    async with open_store(tmp_path) as store:
        with capture_logs() as logs:
            assert not await ensure_embedded_model(store, enabled=True)
        assert await store.is_empty()
    assert [entry["event"] for entry in logs] == ["embedded_model_unavailable"]
