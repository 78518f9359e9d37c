"""How much memory a runner will need, and how much the machine has to give.

The estimate of one runner's footprint (documented in the README) is

    weights  = the GGUF file's size (llama.cpp mmaps it; the pages stay resident while it runs)
               plus the projector's, for a vision model (loaded whole)
    kv_cache = 2 (K and V) × block_count × head_count_kv × head_dim × num_ctx × parallel × bytes
    overhead = RUNNER_OVERHEAD (the Python process, gRPC, llama.cpp's compute buffers)

with the architecture numbers read from the GGUF header (``{arch}.block_count``,
``{arch}.attention.head_count_kv``, ``{arch}.attention.key_length``/``value_length``, defaulting
to ``embedding_length / head_count``). ``bytes`` per element follows ``OLLAMA_KV_CACHE_TYPE``:
2 for f16 (llama.cpp's default), ggml's block sizes for the quantised types (q8_0: 34 bytes per
32 values, q4_0: 18 per 32 — Ollama rounds these to 1 and 0.5).

What is free for a new runner is ``MemAvailable`` (``/proc/meminfo``) minus the weights of the
runners already loaded: their mmapped pages count as reclaimable page cache in ``MemAvailable``,
yet evicting them would only make those runners page them back in. Only ``HEADROOM`` of that is
handed out, so the kernel keeps some cache for everything else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import structlog

log = structlog.get_logger()

RUNNER_OVERHEAD = 96 * 1024 * 1024
# Bytes of a block of 32 cache values, per type (ggml's block_q8_0 / block_q4_0, plain f16).
KV_BLOCK_BYTES = {"f16": 64, "q8_0": 34, "q4_0": 18}
HEADROOM = 0.9
_MEMINFO = Path("/proc/meminfo")

# GGUF value types: fixed-width scalars by struct format; 8 = string, 9 = array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class Footprint:
    """Estimated resident bytes of one runner."""

    weights: int
    kv_cache: int
    overhead: int = RUNNER_OVERHEAD

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead

    def retyped(self, estimated: str, actual: str) -> Footprint:
        """This estimate with its K/V cache stored as ``actual`` instead of ``estimated``."""
        f16 = self.kv_cache * 64 // KV_BLOCK_BYTES.get(estimated, 64)
        return dataclasses.replace(self, kv_cache=kv_cache_bytes(f16, actual))


class SystemMemory:
    """The real machine: ``/proc/meminfo`` and GGUF headers on disk."""

    def available(self) -> int | None:
        """``MemAvailable`` in bytes, or None where the kernel does not report it."""
        try:
            for line in _MEMINFO.read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    async def footprint(self, model_path: str, n_ctx: int, extra_files: tuple[str, ...] = (),
                        kv_cache_type: str = "f16") -> Footprint:
        """The estimate for ``model_path`` with ``n_ctx`` KV cells in all (ctx × parallel) stored
        as ``kv_cache_type``; ``extra_files`` (a projector) are loaded whole, so their size counts
        as weights."""
        return await asyncio.to_thread(estimate_footprint, model_path, n_ctx, extra_files,
                                       kv_cache_type)


def shortfall(need: Footprint, available: int | None, resident: list[Footprint]) -> int:
    """Bytes missing to start a runner needing ``need`` (<= 0 when it fits; 0 if unknown)."""
    if available is None:
        return 0
    free = available - sum(f.weights for f in resident)
    return need.total - int(free * HEADROOM)


def estimate_footprint(model_path: str, n_ctx: int, extra_files: tuple[str, ...] = (),
                       kv_cache_type: str = "f16") -> Footprint:
    """Blocking: file sizes plus the KV cache the GGUF's shape implies (0 when unreadable)."""
    try:
        weights = sum(os.stat(path).st_size for path in (model_path, *extra_files))
    except OSError:
        return Footprint(weights=0, kv_cache=0)
    try:
        per_token = kv_bytes_per_token(model_path)
    except (OSError, ValueError, struct.error) as exc:
        log.warning("kv_estimate_failed", model_path=model_path, error=str(exc))
        per_token = 0
    return Footprint(weights=weights, kv_cache=kv_cache_bytes(per_token * n_ctx, kv_cache_type))


def kv_cache_bytes(f16_bytes: int, kv_cache_type: str) -> int:
    """The size of an f16 cache of ``f16_bytes`` when stored as ``kv_cache_type``."""
    return f16_bytes * KV_BLOCK_BYTES.get(kv_cache_type, 64) // 64


@lru_cache(maxsize=64)
def kv_bytes_per_token(model_path: str) -> int:
    """f16 K and V bytes one token occupies across every layer."""
    meta = read_gguf_scalars(model_path)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ValueError("no general.architecture in the GGUF header")
    layers = int(meta.get(f"{arch}.block_count", 0))
    heads = int(meta.get(f"{arch}.attention.head_count", 0) or 1)
    kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads) or heads)
    head_dim = int(meta.get(f"{arch}.embedding_length", 0)) // heads
    k_len = int(meta.get(f"{arch}.attention.key_length", head_dim))
    v_len = int(meta.get(f"{arch}.attention.value_length", head_dim))
    return layers * kv_heads * (k_len + v_len) * 2


def read_gguf_scalars(path: str) -> dict[str, object]:
    """Every scalar and string key of a GGUF header; arrays are skipped (a per-layer
    ``head_count_kv`` array is reduced to its largest element)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        version, _tensors, count = struct.unpack("<IQQ", f.read(20))
        if version < 2:
            raise ValueError(f"unsupported GGUF version {version}")
        meta: dict[str, object] = {}
        for _ in range(count):
            key = _string(f)
            (kind,) = struct.unpack("<I", f.read(4))
            meta[key] = _value(f, kind)
        return meta


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int) -> object:
    if kind in _SCALARS:
        fmt = "<" + _SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        item, n = struct.unpack("<IQ", f.read(12))
        if item in _SCALARS:
            size = struct.calcsize("<" + _SCALARS[item])
            if item not in (6, 7, 12) and n and size * n <= 4096:  # small int arrays: keep the max
                return max(struct.unpack(f"<{n}{_SCALARS[item]}", f.read(size * n)))
            f.seek(size * n, os.SEEK_CUR)
            return None
        if item == _STRING:  # vocabularies: hop over each string
            for _ in range(n):
                (length,) = struct.unpack("<Q", f.read(8))
                f.seek(length, os.SEEK_CUR)
            return None
        for _ in range(n):
            _value(f, item)  # nested arrays
        return None
    raise ValueError(f"unknown GGUF value type {kind}")
