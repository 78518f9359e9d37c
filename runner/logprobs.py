"""Log-probabilities of generated tokens, read from the logits llama.cpp left for a position.

Only requests that ask for them pay: numpy is imported on first use (the runner starts without
it), and the vocabulary-sized logits are read in place, never copied into Python objects.
Values come from the model's raw distribution (before temperature or other samplers), as
Ollama and OpenAI report them.
"""

from __future__ import annotations

from collections.abc import Callable

from llama_cpp import llama_cpp

from services.pb.corral.runner.v1 import runner_pb2 as pb


def token_logprob(ctx: llama_cpp.llama_context_p, index: int, n_vocab: int, token: int,
                  top_n: int, piece: Callable[[int], bytes]) -> pb.TokenLogprob:
    """``token``'s log-probability at batch position ``index``, with the ``top_n`` likeliest."""
    import numpy as np  # noqa: PLC0415 - on first use: a runner starts without numpy

    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))
    entry = pb.TokenLogprob(token=token, piece=piece(token),
                            logprob=float(logits[token]) - log_total)
    if top_n > 0:
        best = np.argpartition(logits, -top_n)[-top_n:]
        for candidate in best[np.argsort(logits[best])[::-1]]:
            entry.top.append(pb.TokenLogprob(token=int(candidate), piece=piece(int(candidate)),
                                             logprob=float(logits[candidate]) - log_total))
    return entry
