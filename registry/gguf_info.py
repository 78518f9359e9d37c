"""Facts about a GGUF file that the API reports (``details``, ``/api/show``) and chat needs.

``gguf.GGUFReader`` memory-maps the file and parses every key and tensor header, which costs a
couple of seconds for a 49k-token vocabulary: read once per blob, in a thread, and store it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf

_THOUSAND, _MILLION, _BILLION = 1_000, 1_000_000, 1_000_000_000


@dataclass(frozen=True)
class GGUFInfo:
    """What Corral needs from a GGUF header."""

    architecture: str
    parameter_count: int
    parameter_size: str
    quantization: str
    context_length: int
    embedding_length: int
    chat_template: str
    bos_token: str
    eos_token: str


async def load_gguf_info(path: Path) -> GGUFInfo:
    """``read_gguf_info`` in a worker thread."""
    return await asyncio.to_thread(read_gguf_info, path)


def read_gguf_info(path: Path) -> GGUFInfo:
    """Read ``path``'s header. Blocking; raises ``ValueError`` for a file that is not GGUF."""
    reader = gguf.GGUFReader(path)
    arch = _string(reader, "general.architecture")
    parameters = sum(int(t.n_elements) for t in reader.tensors)
    return GGUFInfo(
        architecture=arch,
        parameter_count=parameters,
        parameter_size=human_number(parameters),
        quantization=_quantization(reader),
        context_length=_int(reader, f"{arch}.context_length"),
        embedding_length=_int(reader, f"{arch}.embedding_length"),
        chat_template=_string(reader, "tokenizer.chat_template"),
        bos_token=_token_text(reader, "tokenizer.ggml.bos_token_id"),
        eos_token=_token_text(reader, "tokenizer.ggml.eos_token_id"),
    )


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber``: ``134.52M``, ``8B``, ``7.6B``, ``12K``."""
    if n >= _BILLION:
        return _scaled(n / _BILLION, "B", decimals=1)
    if n >= _MILLION:
        return _scaled(n / _MILLION, "M", decimals=2)
    if n >= _THOUSAND:
        return f"{n / _THOUSAND:.0f}K"
    return str(n)


def quantization_name(file_type: int) -> str:
    """``general.file_type`` as Ollama names it: ``Q4_1``, ``Q4_K_M``, ``F16``, ``BF16``."""
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _scaled(value: float, unit: str, *, decimals: int) -> str:
    if value == int(value):
        return f"{value:.0f}{unit}"
    return f"{value:.{decimals}f}{unit}"


def _quantization(reader: gguf.GGUFReader) -> str:
    """From ``general.file_type``; failing that, the type holding most weights."""
    field = reader.get_field("general.file_type")
    if field is not None:
        return quantization_name(int(field.contents()))
    weights: Counter[str] = Counter()
    for tensor in reader.tensors:
        weights[tensor.tensor_type.name] += int(tensor.n_elements)
    return weights.most_common(1)[0][0] if weights else "unknown"


def _string(reader: gguf.GGUFReader, key: str) -> str:
    field = reader.get_field(key)
    return str(field.contents()) if field is not None else ""


def _int(reader: gguf.GGUFReader, key: str) -> int:
    field = reader.get_field(key)
    return int(field.contents()) if field is not None else 0


def _token_text(reader: gguf.GGUFReader, id_key: str) -> str:
    """The vocabulary entry a special-token id points at; indexes one entry, decodes one."""
    id_field, tokens = reader.get_field(id_key), reader.get_field("tokenizer.ggml.tokens")
    if id_field is None or tokens is None:
        return ""
    token_id = int(id_field.contents())
    if not 0 <= token_id < len(tokens.data):
        return ""
    return bytes(tokens.parts[tokens.data[token_id]]).decode("utf-8", errors="replace")
