"""Fitting embedding inputs to the context (real SmolLM2 tokenizer)."""

from __future__ import annotations

import pytest

from runner.embedding import embedding_tokens
from runner.llama import ContextConfig, Model, silence_llama_logs
from services.errors import InvalidRequestError


@pytest.fixture(scope="module")
def vocab(model_path: str):
    silence_llama_logs()
    model = Model(model_path, ContextConfig(n_ctx=64, n_seq=1, n_batch=64, n_threads=1))
    yield model.vocab
    model.close()


def test_inputs_that_fit_are_kept_whole(vocab) -> None:
    tokens = embedding_tokens(vocab, ["hello world"], truncate=False, limit=64)
    assert tokens == [vocab.tokenize("hello world", add_special=True, parse_special=True)]


def test_a_long_input_is_refused_without_truncate(vocab) -> None:
    with pytest.raises(InvalidRequestError, match="the input length exceeds the context length"):
        embedding_tokens(vocab, ["short", "one two three four five six seven"], truncate=False,
                         limit=4)


def test_a_long_input_is_cut_to_its_first_tokens(vocab) -> None:
    text = "one two three four five six seven eight nine ten"
    (cut,) = embedding_tokens(vocab, [text], truncate=True, limit=5)
    assert 0 < len(cut) <= 5
    assert vocab.detokenize(cut).strip().startswith("one two")


def test_empty_input_is_refused(vocab) -> None:
    with pytest.raises(InvalidRequestError, match="empty"):
        embedding_tokens(vocab, [""], truncate=True, limit=8)
