"""Facts about a GGUF file that the API reports (``details``, ``/api/show``), chat needs and
the gateway's memory estimate uses, derived from the header's key/values.

Nothing here reads a file: ``registry.gguf_kv`` is the one GGUF reader, and the registry
stores these facts per blob (table ``gguf_info``) when it records a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gguf

_THOUSAND, _MILLION, _BILLION = 1_000, 1_000_000, 1_000_000_000
_LLM, _ATTENTION = gguf.Keys.LLM, gguf.Keys.Attention
# Keys whose value may be a per-layer array (e.g. OpenELM's head counts); the largest counts.
SHAPE_KEYS = (_LLM.BLOCK_COUNT, _LLM.EMBEDDING_LENGTH, _ATTENTION.HEAD_COUNT,
              _ATTENTION.HEAD_COUNT_KV, _ATTENTION.KEY_LENGTH, _ATTENTION.VALUE_LENGTH)


@dataclass(frozen=True)
class KvShape:
    """The attention K/V cache's shape, as the memory estimate uses it (defaults applied:
    ``head_count`` at least 1, ``head_count_kv`` = ``head_count``, key and value lengths =
    ``embedding_length // head_count``)."""

    block_count: int = 0
    head_count: int = 1
    head_count_kv: int = 1
    key_length: int = 0
    value_length: int = 0

    @property
    def f16_bytes_per_token(self) -> int:
        """K and V bytes one token occupies across every layer, stored as f16."""
        return self.block_count * self.head_count_kv * (self.key_length + self.value_length) * 2


@dataclass(frozen=True)
class GGUFInfo:
    """What Corral needs from a GGUF header. ``kv_shape`` is None only for facts recorded
    before the registry stored it (``ModelStore`` reads the header again then)."""

    architecture: str
    parameter_count: int
    parameter_size: str
    quantization: str
    context_length: int
    embedding_length: int
    chat_template: str
    bos_token: str
    eos_token: str
    kv_shape: KvShape | None = None


def kv_shape(kv: Mapping[str, Any]) -> KvShape:
    """The K/V cache shape the key/values ``kv`` describe; all zero without an architecture.

    A per-layer array counts as its largest element; a value that is not a number counts as
    absent."""
    arch = kv.get(gguf.Keys.General.ARCHITECTURE)
    if not isinstance(arch, str):
        return KvShape(head_count=0, head_count_kv=0)

    def number(template: str, default: int) -> int:
        value = kv.get(template.format(arch=arch))
        if isinstance(value, list):
            value = max((v for v in value if type(v) is int), default=None)  # bools are not
        return int(value) if isinstance(value, (int, float)) else default

    heads = number(_ATTENTION.HEAD_COUNT, 0) or 1
    head_dim = number(_LLM.EMBEDDING_LENGTH, 0) // heads
    return KvShape(block_count=number(_LLM.BLOCK_COUNT, 0), head_count=heads,
                   head_count_kv=number(_ATTENTION.HEAD_COUNT_KV, heads) or heads,
                   key_length=number(_ATTENTION.KEY_LENGTH, head_dim),
                   value_length=number(_ATTENTION.VALUE_LENGTH, head_dim))


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
