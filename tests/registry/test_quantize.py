"""``quantize`` in CreateModel: llama.cpp's real quantizer in a child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.quantize import PROGRESS_DIGEST, quantize_file
from services.errors import CorralError
from tests.registry.model_helpers import create, model_store, statuses, upload, write_llama_gguf


async def test_quantize_f16_upload_to_q8_0(tmp_path: Path) -> None:
    source = write_llama_gguf(tmp_path / "f16.gguf", float16=True)
    async with model_store(tmp_path / "m") as store:
        digest = await upload(store, source)
        progress = await create(store, name="small", files={"f16.gguf": digest},
                                quantize="q8_0")
        resolved = await store.resolve("small")
        leftovers = [p.name for p in store.blobs.root.iterdir() if p.name.startswith(".tmp")]
    quantizing = [p for p in progress if p["status"] == "quantizing F16 model to Q8_0"]
    assert quantizing and all(p["digest"] == PROGRESS_DIGEST for p in quantizing)
    assert {p["total"] for p in quantizing} == {source.stat().st_size}
    completed = [p["completed"] for p in quantizing]
    assert completed == sorted(completed) and completed[0] == 0
    assert completed[-1] == source.stat().st_size
    model = resolved.manifest.layers[0]
    assert model.digest != digest
    assert statuses(progress)[0] == "parsing GGUF"
    assert statuses(progress)[len(quantizing) + 1:][:2] == [
        "verifying conversion", f"creating new layer {model.digest}"]
    assert resolved.record.details.quantization_level == "Q8_0"
    assert model.size < source.stat().st_size
    assert leftovers == []


async def test_quantize_to_the_source_type_is_a_no_op(tmp_path: Path) -> None:
    source = write_llama_gguf(tmp_path / "f16.gguf", float16=True)
    async with model_store(tmp_path / "m") as store:
        digest = await upload(store, source)
        progress = await create(store, name="same", files={"f16.gguf": digest}, quantize="F16")
        resolved = await store.resolve("same")
    assert resolved.manifest.layers[0].digest == digest
    assert not any(s.startswith("quantizing") for s in statuses(progress))


async def test_quantizer_failure_reports_llama_cpp_output(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(CorralError, match="quantization failed"):
        await quantize_file(bogus, tmp_path / "out.gguf", "Q8_0", lambda _f: None)
