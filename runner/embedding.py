"""Embedding mode of the engine: inputs to token ids, and one pooled vector per input."""

from __future__ import annotations

from runner.llama import Batch, Model, Vocab
from services.errors import InvalidRequestError


def embed_tokens(vocab: Vocab, text: str, truncate: bool, ctx_size: int) -> list[int]:
    """The input's token ids (with BOS), cut to ``ctx_size`` when ``truncate``, else a 400."""
    tokens = vocab.tokenize(text, add_special=True, parse_special=True)
    if not tokens:
        raise InvalidRequestError("cannot embed an empty input")
    if len(tokens) > ctx_size:
        if not truncate:
            raise InvalidRequestError("the input length exceeds the context length")
        tokens = tokens[:ctx_size]
    return tokens


def embed_all(model: Model, batch: Batch, inputs: list[list[int]]) -> list[list[float]]:
    """Embed each input alone as sequence 0, clearing the memory around each (inference
    thread only)."""
    vectors = []
    try:
        for tokens in inputs:
            model.clear()
            batch.clear()
            for pos, token in enumerate(tokens):
                batch.add(token, pos, 0, True)
            model.decode(batch)
            vectors.append(model.sequence_embedding(0))
    finally:
        model.clear()
    return vectors
