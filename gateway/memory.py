"""How much memory a runner will need, and how much the machine has to give.

The estimate of one runner's footprint (documented in the README) is

    weights  = the GGUF file's size (llama.cpp mmaps it; the pages stay resident while it runs)
               plus the projector's, for a vision model (loaded whole)
    kv_cache = block_count × head_count_kv × (key_length + value_length) × num_ctx × parallel
               × bytes
    overhead = RUNNER_OVERHEAD (the Python process, gRPC, llama.cpp's compute buffers)

with the shape read from the GGUF header by the registry when it records the model: the f16
figure per token arrives in ``ResolveModelResponse.kv_cache_shape`` (the gateway reads no GGUF
itself). ``bytes`` per element follows ``OLLAMA_KV_CACHE_TYPE``:
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
from dataclasses import dataclass
from pathlib import Path

RUNNER_OVERHEAD = 96 * 1024 * 1024
# Bytes of a block of 32 cache values, per type (ggml's block_q8_0 / block_q4_0, plain f16).
KV_BLOCK_BYTES = {"f16": 64, "q8_0": 34, "q4_0": 18}
HEADROOM = 0.9
_MEMINFO = Path("/proc/meminfo")


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
    """The real machine: ``/proc/meminfo`` and the sizes of the files a runner loads."""

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
                        kv_cache_type: str = "f16", *, kv_bytes_per_token: int) -> Footprint:
        """The estimate for ``model_path`` with ``n_ctx`` KV cells in all (ctx × parallel) of
        ``kv_bytes_per_token`` f16 bytes each, stored as ``kv_cache_type``; ``extra_files`` (a
        projector) are loaded whole, so their size counts as weights."""
        return await asyncio.to_thread(estimate_footprint, model_path, n_ctx, extra_files,
                                       kv_cache_type, kv_bytes_per_token=kv_bytes_per_token)


def shortfall(need: Footprint, available: int | None, resident: list[Footprint]) -> int:
    """Bytes missing to start a runner needing ``need`` (<= 0 when it fits; 0 if unknown)."""
    if available is None:
        return 0
    free = available - sum(f.weights for f in resident)
    return need.total - int(free * HEADROOM)


def estimate_footprint(model_path: str, n_ctx: int, extra_files: tuple[str, ...] = (),
                       kv_cache_type: str = "f16", *, kv_bytes_per_token: int) -> Footprint:
    """Blocking: file sizes plus the KV cache of ``n_ctx`` cells (nothing for missing files)."""
    try:
        weights = sum(os.stat(path).st_size for path in (model_path, *extra_files))
    except OSError:
        return Footprint(weights=0, kv_cache=0)
    return Footprint(weights=weights,
                     kv_cache=kv_cache_bytes(kv_bytes_per_token * n_ctx, kv_cache_type))


def kv_cache_bytes(f16_bytes: int, kv_cache_type: str) -> int:
    """The size of an f16 cache of ``f16_bytes`` when stored as ``kv_cache_type``."""
    return f16_bytes * KV_BLOCK_BYTES.get(kv_cache_type, 64) // 64
