"""GGUF facts, read from the real SmolLM2 file, and Ollama's number and type names."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.gguf_info import human_number, quantization_name
from registry.gguf_kv import read_gguf_info


def test_reads_smollm2_facts(smollm2_file: Path) -> None:
    info = read_gguf_info(smollm2_file)
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert info.parameter_count == 134_515_008 and info.parameter_size == "134.52M"
    assert "im_start" in info.chat_template
    assert (info.bos_token, info.eos_token) == ("<|im_start|>", "<|im_end|>")


def test_rejects_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError):
        read_gguf_info(bogus)


@pytest.mark.parametrize(("n", "text"), [
    (134_515_008, "134.52M"), (7_615_616_512, "7.6B"), (8_000_000_000, "8B"),
    (268_098_176, "268.10M"), (135_000_000, "135M"), (12_345, "12K"), (999, "999"),
])
def test_human_number_matches_ollama(n: int, text: str) -> None:
    assert human_number(n) == text


@pytest.mark.parametrize(("file_type", "name"), [
    (0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"), (7, "Q8_0"), (15, "Q4_K_M"),
    (32, "BF16"), (9999, "unknown"),
])
def test_quantization_names(file_type: int, name: str) -> None:
    assert quantization_name(file_type) == name
