"""Fixtures' building blocks for the transfer tests: a store, a service, a fake registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from registry.transfer.remote import TransferOptions
from registry.transfer.service import TransferService

PART = 64 * 1024
WEIGHTS = 4 * PART + 1000  # a model of five parts, the last one short


def fast_options(tmp_path: Path, **overrides) -> TransferOptions:
    """64 KiB parts, millisecond backoff, frequent progress; a key file in ``tmp_path``."""
    values = dict(min_part_size=PART, max_part_size=PART, backoff_s=0.001, attempts=3,
                  progress_interval_s=0.005, stall_timeout_s=5.0, key_file=tmp_path / "id_ed25519")
    values.update(overrides)
    return TransferOptions(**values)


def write_gguf(path: Path, weights: np.ndarray, *, context_length: int = 256) -> Path:
    """A valid GGUF: llama metadata, four tokens, a chat template and ``weights`` as F32."""
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(context_length)
    writer.add_embedding_length(8)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>", "</s>", "a", "b"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_chat_template("{{ messages }}")
    writer.add_tensor("token_embd.weight", weights)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_file(path: Path, floats: int, seed: int = 0) -> bytes:
    """A valid GGUF with ``floats`` random F32 weights; returns its bytes."""
    weights = np.random.default_rng(seed).standard_normal((4, floats // 4)).astype(np.float32)
    return write_gguf(path, weights).read_bytes()


async def pull(service: TransferService, name: str, insecure: bool = True) -> list[dict]:
    """Every progress line of a pull, as dicts."""
    return [{"status": p.status, "digest": p.digest, "total": p.total, "completed": p.completed}
            async for p in service.pull(name, insecure=insecure)]


def blob_files(service: TransferService) -> set[str]:
    """The names of the files in the store's blob folder."""
    root = service.store.blobs.root
    return {p.name for p in root.iterdir()} if root.exists() else set()
