"""ShowModel parts: GGUF key/values (the scanner vs the gguf package), capabilities, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.gguf_kv import SkippedArray, model_info, read_gguf_info, scan_header
from registry.show import ModelShower, capabilities
from services.errors import InvalidModelNameError, ModelNotFoundError
from services.names import parse_name
from tests.registry.gguf_oracle import reader_info
from tests.registry.model_helpers import create, model_store


def test_scanner_agrees_with_the_gguf_package(smollm2_file: Path, tiny_gguf: Path) -> None:
    for path in (smollm2_file, tiny_gguf):
        assert read_gguf_info(path) == reader_info(path)


def test_model_info_of_smollm2(smollm2_file: Path) -> None:
    header = scan_header(smollm2_file)
    assert isinstance(header.kv["tokenizer.ggml.tokens"], SkippedArray)
    assert header.kv["tokenizer.ggml.tokens"].length == 49152
    info = model_info(header)
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert info["general.architecture"] == "llama"
    assert info["llama.context_length"] == 8192 and info["llama.embedding_length"] == 576
    assert info["general.parameter_count"] == 134_515_008
    assert info["tokenizer.ggml.tokens"] == [] and info["tokenizer.ggml.merges"] == []
    assert info["general.languages"] == ["en"]  # short arrays are kept
    assert list(info) == sorted(info)


def test_scanner_rejects_files_that_are_not_gguf(tmp_path: Path) -> None:
    for content in (b"", b"GGML" + b"\0" * 40, b"GGUF\x03\0\0\0" + b"\xff" * 16):
        path = tmp_path / "x.gguf"
        path.write_bytes(content)
        with pytest.raises(ValueError):
            scan_header(path)


@pytest.mark.parametrize(("kv", "projector", "expected"), [
    ({"general.architecture": "llama"}, False, ["completion"]),
    ({"general.architecture": "bert", "bert.pooling_type": 1}, False, ["embedding"]),
    ({"general.architecture": "gemma3", "gemma3.vision.block_count": 27}, False,
     ["completion", "vision"]),
    ({"general.architecture": "llama"}, True, ["completion", "vision"]),
])
def test_capabilities_of_the_weights_follow_ollama_rules(kv, projector, expected) -> None:
    """Template capabilities are the gateway's (tests/gateway/test_routes_models.py)."""
    assert capabilities(kv, projector) == expected


async def test_show_a_created_model(tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await create(store, name="m", from_="base", template="{{ .Tools }}{{ .Prompt }}",
                     licenses=["MIT", "Apache"], system="S")
        shower = ModelShower(store)
        shown = await shower.show("M")
        again = await shower.show("m")
    assert shown.capabilities == ["completion"]
    assert shown.resolved.licenses == ["MIT", "Apache"] and shown.resolved.system == "S"
    assert shown.resolved.parent_model == "base:latest"
    assert shown.model_info["general.architecture"] == "llama"
    assert shown.model_info["tokenizer.ggml.tokens"] == ["<s>", "</s>", "a", "b"]  # 4 <= 5
    assert again.model_info == shown.model_info


async def test_show_errors_use_the_display_name(tmp_path: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        shower = ModelShower(store)
        with pytest.raises(ModelNotFoundError) as excinfo:
            await shower.show("NoPe")
        assert excinfo.value.message == "model 'NoPe:latest' not found"
        with pytest.raises(ModelNotFoundError) as excinfo:
            await shower.show("me/x:v1")
        assert excinfo.value.message == "model 'me/x:v1' not found"
        with pytest.raises(InvalidModelNameError):
            await shower.show("../../etc/passwd")
