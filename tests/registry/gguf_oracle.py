"""GGUF facts as the ``gguf`` package's own reader sees them: the oracle the scanner in
``registry.gguf_kv`` is checked against (too slow for big vocabularies to serve in production)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import gguf

from registry.gguf_info import GGUFInfo, human_number, kv_shape, quantization_name


def reader_info(path: Path) -> GGUFInfo:
    """``GGUFInfo`` of ``path`` read with ``gguf.GGUFReader``."""
    reader = gguf.GGUFReader(path)
    kv = {name: _contents(field) for name, field in reader.fields.items()}
    arch = str(kv.get("general.architecture", ""))
    parameters = sum(int(t.n_elements) for t in reader.tensors)
    return GGUFInfo(
        architecture=arch, parameter_count=parameters, parameter_size=human_number(parameters),
        quantization=_quantization(reader, kv),
        context_length=int(kv.get(f"{arch}.context_length", 0)),
        embedding_length=int(kv.get(f"{arch}.embedding_length", 0)),
        chat_template=str(kv.get("tokenizer.chat_template", "")),
        bos_token=_token(reader, kv, "tokenizer.ggml.bos_token_id"),
        eos_token=_token(reader, kv, "tokenizer.ggml.eos_token_id"),
        kv_shape=kv_shape(kv))


def _contents(field: gguf.ReaderField) -> Any:
    if field.types and field.types[0] == gguf.GGUFValueType.ARRAY and field.name.startswith(
            "tokenizer.ggml."):
        return None  # the vocabulary: the facts need one entry, read below
    return field.contents()


def _quantization(reader: gguf.GGUFReader, kv: dict[str, Any]) -> str:
    if "general.file_type" in kv:
        return quantization_name(int(kv["general.file_type"]))
    weights: Counter[str] = Counter()
    for tensor in reader.tensors:
        weights[tensor.tensor_type.name] += int(tensor.n_elements)
    return weights.most_common(1)[0][0] if weights else "unknown"


def _token(reader: gguf.GGUFReader, kv: dict[str, Any], id_key: str) -> str:
    tokens = reader.get_field("tokenizer.ggml.tokens")
    if id_key not in kv or tokens is None:
        return ""
    token_id = int(kv[id_key])
    if not 0 <= token_id < len(tokens.data):
        return ""
    return bytes(tokens.parts[tokens.data[token_id]]).decode("utf-8", errors="replace")
