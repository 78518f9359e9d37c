"""Projector layers: a ``clip`` GGUF becomes ``application/vnd.ollama.image.projector``; the
resolved model carries its path, ``show`` reports ``vision`` and ``projector_info``."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.manifests import MODEL_MEDIA_TYPE, PROJECTOR_MEDIA_TYPE
from registry.show import ModelShower
from services.errors import InvalidRequestError
from tests.registry.model_helpers import create, model_store, statuses, upload, write_projector


async def test_a_second_gguf_file_of_architecture_clip_is_the_projector(
        tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        model = await upload(store, tiny_gguf)
        projector = await upload(store, write_projector(tmp_path / "mmproj.gguf"))
        progress = await create(store, name="vision", files={"model.gguf": model,
                                                             "mmproj.gguf": projector})
        resolved = await store.resolve("vision")
        shown = await ModelShower(store).show("vision")
    assert statuses(progress)[:2] == ["parsing GGUF", "parsing GGUF"]
    assert [layer.media_type for layer in resolved.manifest.layers] == [MODEL_MEDIA_TYPE,
                                                                         PROJECTOR_MEDIA_TYPE]
    assert resolved.projector_paths == [store.blobs.path(projector).resolve()]
    assert resolved.model_path == store.blobs.path(model).resolve()
    assert shown.capabilities == ["completion", "vision"]
    assert shown.projectors == [projector]
    info = shown.projector_info
    assert info["general.architecture"] == "clip" and info["general.name"] == "test projector"
    assert info["clip.vision.image_size"] == 64 and info["clip.vision.image_mean"] == [0.5] * 3
    assert info["clip.vision.image_grid_pinpoints"] == []  # long arrays, as in model_info
    assert info["general.parameter_count"] == 32


async def test_from_a_model_plus_a_projector_file(tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await create(store, name="base", files={"model.gguf": await upload(store, tiny_gguf)})
        first = await upload(store, write_projector(tmp_path / "a.gguf"))
        second = await upload(store, write_projector(tmp_path / "b.gguf", image_size=32))
        await create(store, name="vision", from_="base", files={"mmproj.gguf": first})
        await create(store, name="vision2", from_="vision", files={"mmproj.gguf": second})
        await create(store, name="inherits", from_="vision2")
        assert (await store.resolve("vision")).layer_digests(PROJECTOR_MEDIA_TYPE) == [first]
        assert (await store.resolve("vision2")).layer_digests(PROJECTOR_MEDIA_TYPE) == [second]
        assert (await store.resolve("inherits")).layer_digests(PROJECTOR_MEDIA_TYPE) == [second]
        assert (await ModelShower(store).show("base")).projector_info == {}
        with pytest.raises(InvalidRequestError, match="only a projector file"):
            await create(store, name="bad", from_="base",
                         files={"more.gguf": await upload(store, tiny_gguf)})
