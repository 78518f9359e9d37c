"""Helpers for the model-management tests: a store with options, GGUF files, blob uploads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from registry.blobs import BlobStore
from registry.create import CreateRequest, ModelCreator
from registry.db import migrate, open_database, session_factory
from registry.replicas import watch_model_changes
from registry.store import ModelStore


@asynccontextmanager
async def model_store(models_dir: Path, *, noprune: bool = False) -> AsyncIterator[ModelStore]:
    """A ``ModelStore`` (with ``noprune`` as given) on a freshly migrated database."""
    models_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(models_dir) as engine:
        await migrate(engine)
        store = ModelStore(session_factory(engine), BlobStore(models_dir / "blobs"), noprune=noprune)
        async with watch_model_changes(engine, store):
            yield store


def write_llama_gguf(path: Path, *, float16: bool = False, general_type: str = "") -> Path:
    """A tiny but loadable llama GGUF (one block, 64-wide, 32 tokens) in F32 or F16.

    Unlike ``conftest.write_tiny_gguf`` it carries every hyperparameter llama.cpp needs, so the
    quantizer accepts it.
    """
    import gguf
    import numpy as np

    n_embd, n_ff, n_vocab, n_head = 64, 128, 32, 2
    dtype = np.float16 if float16 else np.float32
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if float16 else gguf.LlamaFileType.ALL_F32)
    if general_type:
        writer.add_type(general_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(n_vocab)])
    writer.add_token_types([1] * n_vocab)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (n_vocab, n_embd), "output.weight": (n_vocab, n_embd),
              **{f"blk.0.attn_{n}.weight": (n_embd, n_embd) for n in ("q", "k", "v", "output")},
              "blk.0.ffn_gate.weight": (n_ff, n_embd), "blk.0.ffn_up.weight": (n_ff, n_embd),
              "blk.0.ffn_down.weight": (n_embd, n_ff)}
    for name, shape in shapes.items():
        writer.add_tensor(name, rng.standard_normal(shape).astype(dtype))
    for name in ("output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"):
        writer.add_tensor(name, np.ones(n_embd, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def upload(store: ModelStore, path: Path) -> str:
    """Put ``path`` into the blob store as an upload would; return its digest."""
    data = path.read_bytes()
    digest = sha256_digest(data)
    await store.blobs.write_stream(digest, chunks_of(data))
    return digest


async def create(store: ModelStore, **fields) -> list[dict]:
    """Run a create to completion; return its progress objects."""
    return [p async for p in ModelCreator(store).create(CreateRequest(**fields))]


def statuses(progress: list[dict]) -> list[str]:
    return [p["status"] for p in progress]


def blob_files(store: ModelStore) -> set[str]:
    """Digests of the blob files on disk (temp files excluded)."""
    return {p.name.replace("-", ":", 1) for p in store.blobs.root.iterdir()
            if p.name.startswith("sha256-")}


def write_projector(path: Path, *, image_size: int = 64) -> Path:
    """A small ``clip`` GGUF: enough keys and one tensor for the registry (not for mtmd)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", "test projector")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_grid_pinpoints", list(range(8)))
    writer.add_tensor("mm.0.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
