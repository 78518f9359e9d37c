"""A real LoRA adapter GGUF for a base model, written with the ``gguf`` package.

LoRA pairs on every layer's attention query and value projections, shaped as llama.cpp checks
them: ``lora_a`` is ``[n_in, rank]`` and ``lora_b`` is ``[rank, n_out]`` in ggml order. With
``strength`` 0 the adapter is a no-op (``lora_b`` zero); with a large one it visibly changes
every answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_lora(path: Path, base_model: str | Path, *, strength: float, rank: int = 4,
               seed: int = 0, wrong_shape: bool = False) -> Path:
    """Write the adapter; ``wrong_shape`` makes ``lora_a`` one column too wide (for another
    model), which llama.cpp must refuse."""
    import gguf

    reader = gguf.GGUFReader(str(base_model))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    targets = [t for t in reader.tensors if t.name.endswith((".attn_q.weight", ".attn_v.weight"))]
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for tensor in targets:
        n_in, n_out = int(tensor.shape[0]) + int(wrong_shape), int(tensor.shape[1])
        a = (rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(np.float32)
        b = (strength * rng.standard_normal((n_out, rank))).astype(np.float32)
        writer.add_tensor(tensor.name + ".lora_a", a)
        writer.add_tensor(tensor.name + ".lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
