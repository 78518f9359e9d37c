"""ModelStore on a tiny GGUF: import, resolve, list, case-insensitive names, shared blobs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from registry.manifests import CONFIG_MEDIA_TYPE, MODEL_MEDIA_TYPE, Manifest
from services.errors import InvalidModelNameError, ModelNotFoundError
from services.names import parse_name
from tests.registry.conftest import open_store, write_tiny_gguf


async def test_import_then_resolve(tmp_path: Path, tiny_gguf: Path) -> None:
    async with open_store(tmp_path / "models") as store:
        record = await store.import_gguf(parse_name("Tiny:Latest"), tiny_gguf)
        resolved = await store.resolve("registry.ollama.ai/library/tiny:latest")
    assert resolved.record == record
    assert record.name.display == "Tiny:Latest"
    assert record.details.family == "llama" and record.details.families == ("llama",)
    assert record.details.quantization_level == "F32" and record.details.context_length == 256
    assert resolved.model_path.is_absolute()
    assert resolved.model_path.read_bytes() == tiny_gguf.read_bytes()
    assert resolved.chat_template == "{{ messages }}"
    assert (resolved.bos_token, resolved.eos_token) == ("<s>", "</s>")
    assert (resolved.template, resolved.system, resolved.parameters, resolved.messages) == (
        "", "", {}, [])


async def test_manifest_is_ollama_schema2_and_digest_is_its_hash(
        tmp_path: Path, tiny_gguf: Path) -> None:
    async with open_store(tmp_path / "models") as store:
        record = await store.import_gguf(parse_name("tiny"), tiny_gguf)
        content = await store.manifest_bytes("TINY")
    assert hashlib.sha256(content).hexdigest() == record.digest
    assert content.endswith(b"}\n") and b" " not in content
    raw = json.loads(content)
    assert list(raw) == ["schemaVersion", "mediaType", "config", "layers"]
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    manifest = Manifest.parse(content)
    assert manifest.config.media_type == CONFIG_MEDIA_TYPE
    assert [layer.media_type for layer in manifest.layers] == [MODEL_MEDIA_TYPE]
    assert record.size == manifest.size == manifest.config.size + tiny_gguf.stat().st_size
    config = json.loads(store.blobs.path(manifest.config.digest).read_bytes())
    assert config == {"model_format": "gguf", "model_family": "llama",
                      "model_families": ["llama"], "model_type": "32", "file_type": "F32",
                      "architecture": "amd64", "os": "linux"}


async def test_missing_and_invalid_names(tmp_path: Path) -> None:
    async with open_store(tmp_path / "models") as store:
        with pytest.raises(ModelNotFoundError) as excinfo:
            await store.resolve("NoPe:1")
        assert excinfo.value.message == "model 'NoPe:1' not found"
        with pytest.raises(InvalidModelNameError):
            await store.resolve("../etc")


async def test_reimport_under_other_casing_updates_one_row(tmp_path: Path, tiny_gguf: Path) -> None:
    other = write_tiny_gguf(tmp_path / "other.gguf", context_length=512)
    async with open_store(tmp_path / "models") as store:
        first = await store.import_gguf(parse_name("tiny"), tiny_gguf)
        second = await store.import_gguf(parse_name("TINY"), other)
        models = await store.list_models()
    assert [m.name.display for m in models] == ["tiny:latest"]
    assert second.digest != first.digest and models[0].digest == second.digest
    assert models[0].details.context_length == 512
    assert second.modified_at >= first.modified_at


async def test_copies_share_blobs_and_list_newest_first(tmp_path: Path, tiny_gguf: Path) -> None:
    async with open_store(tmp_path / "models") as store:
        a = await store.import_gguf(parse_name("a"), tiny_gguf)
        blobs_after_first = sorted(store.blobs.root.iterdir())
        b = await store.import_gguf(parse_name("me/b:v1"), tiny_gguf)
        models = await store.list_models()
        assert sorted(store.blobs.root.iterdir()) == blobs_after_first
    assert a.digest == b.digest
    assert [m.name.display for m in models] == ["me/b:v1", "a:latest"]


async def test_resolve_is_cached_until_a_write_changes_the_models(
        tmp_path: Path, tiny_gguf: Path) -> None:
    other = write_tiny_gguf(tmp_path / "other.gguf", context_length=512)
    async with open_store(tmp_path / "models") as store:
        await store.import_gguf(parse_name("tiny"), tiny_gguf)
        first = await store.resolve("tiny")
        assert await store.resolve("TINY:latest") is first  # served from the cache
        await store.import_gguf(parse_name("tiny"), other)  # re-pointed
        second = await store.resolve("tiny")
        assert second.record.details.context_length == 512
        await store.copy_model("tiny", "copy")
        assert (await store.resolve("copy")).record.digest == second.record.digest
        await store.delete_model("tiny")
        with pytest.raises(ModelNotFoundError):
            await store.resolve("tiny")
        assert (await store.resolve("copy")).record.digest == second.record.digest


async def test_a_resolve_racing_a_write_does_not_cache_the_old_model(
        tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = write_tiny_gguf(tmp_path / "other.gguf", context_length=512)
    async with open_store(tmp_path / "models") as store:
        await store.import_gguf(parse_name("tiny"), tiny_gguf)
        real = store._resolved

        async def write_meanwhile(row, facts):  # the write commits while resolve reads
            resolved = await real(row, facts)
            monkeypatch.setattr(store, "_resolved", real)
            await store.import_gguf(parse_name("tiny"), other)
            return resolved

        monkeypatch.setattr(store, "_resolved", write_meanwhile)
        stale = await store.resolve("tiny")
        assert stale.record.details.context_length == 256
        assert (await store.resolve("tiny")).record.details.context_length == 512
