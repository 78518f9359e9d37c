"""Embedding work of an ``--embedding`` runner: fitting inputs to the context, pooling them."""

from __future__ import annotations

from runner.llama import Batch, Model, Vocab
from services.errors import InvalidRequestError

TOO_LONG = "the input length exceeds the context length"


def embedding_tokens(vocab: Vocab, texts: list[str], truncate: bool,
                     limit: int) -> list[list[int]]:
    """Each input's tokens (BOS/EOS included). One longer than ``limit`` is refused without
    ``truncate``, else cut to its first tokens, keeping room for the special tokens (Ollama's
    embed truncation). Any thread may call this: it only reads the vocabulary."""
    specials = len(vocab.tokenize("", add_special=True, parse_special=True))
    out = []
    for text in texts:
        tokens = vocab.tokenize(text, add_special=True, parse_special=True)
        if not tokens:
            raise InvalidRequestError("cannot embed an empty input")
        if len(tokens) > limit:
            if not truncate:
                raise InvalidRequestError(TOO_LONG)
            plain = vocab.tokenize(text, add_special=False, parse_special=True)
            cut = vocab.detokenize(plain[:max(limit - specials, 1)])
            tokens = vocab.tokenize(cut, add_special=True, parse_special=True)[:limit]
        out.append(tokens)
    return out


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
