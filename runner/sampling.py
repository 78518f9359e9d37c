"""Per-request sampler chains, built in C from the request's ``SamplingOptions``.

A chain made only of samplers llama.cpp can run inside the compute graph (greedy, top-k, top-p,
min-p, temperature, dist — not penalties, grammar or typical) is attached to its slot's sequence
(``llama_set_sampler``): every such slot of a step is then sampled by ``llama_decode`` itself,
on all of ggml's threads, and reading a token is one cheap call. Sampling on the CPU costs about
65 µs per slot per step here (the chain first copies all 49k logits into a candidate array).
Same tokens either way: greedy is an argmax, and dist draws from the same seeded generator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

from llama_cpp import llama_cpp

from runner.llama import Vocab
from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb


@dataclass(frozen=True)
class SamplerConfig:
    """Resolved sampling knobs; the defaults apply to fields the request left unset."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1

    @classmethod
    def from_proto(cls, options: pb.SamplingOptions) -> SamplerConfig:
        """Take every field the request set (``HasField``), defaults for the rest."""
        defaults = cls()
        # The dataclass's fields are SamplingOptions' fields, the only names HasField takes
        # (the stubs accept only those names as Literals, which a loop variable cannot be).
        given = {name for name in cls.__dataclass_fields__
                 if options.HasField(name)}  # type: ignore[arg-type]
        values = {name: getattr(options if name in given else defaults, name)
                  for name in cls.__dataclass_fields__}
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Refuse non-finite floats: an infinite temperature or NaN probability makes llama.cpp's
        samplers spin forever (the gateway already refuses them; this guards the runner)."""
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidRequestError(f"sampling option {spec.name} must be finite")

    @property
    def penalizes(self) -> bool:
        return self.repeat_last_n != 0 and (
            self.repeat_penalty != 1.0 or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0)

    def resolved_seed(self) -> int:
        """The seed as llama.cpp takes it: the value mod 2**32 (a uint32, as llama-server casts
        Ollama's int seed), where 0xFFFFFFFF (so -1, the default) means a random one."""
        seed = self.seed & 0xFFFFFFFF
        return random.getrandbits(32) if seed == 0xFFFFFFFF else seed


class Sampler:
    """A ``llama_sampler`` chain owned by one request; ``free()`` releases it."""

    def __init__(self, config: SamplerConfig, vocab: Vocab, n_ctx: int, grammar: str = "") -> None:
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self.chain = llama_cpp.llama_sampler_chain_init(params)
        self.penalties: llama_cpp.llama_sampler_p | None = None
        self.offloadable = not grammar and not config.penalizes and config.typical_p >= 1.0
        # (ctx, seq) while llama.cpp samples it
        self._attached: tuple[llama_cpp.llama_context_p, int] | None = None
        self.repeat_last_n = n_ctx if config.repeat_last_n < 0 else config.repeat_last_n
        try:
            self._build(config, vocab, grammar)
        except BaseException:
            self.free()
            raise

    def _build(self, config: SamplerConfig, vocab: Vocab, grammar: str) -> None:
        if config.penalizes:
            # llama-cpp-python 0.3.36 (pinned) takes n_vocab first, unlike llama.cpp upstream
            self.penalties = llama_cpp.llama_sampler_init_penalties(
                vocab.n_tokens, self.repeat_last_n, config.repeat_penalty,
                config.frequency_penalty, config.presence_penalty)
            self._add(self.penalties)
        if grammar:
            self._add(_grammar_sampler(vocab, grammar))
        if config.temperature <= 0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if config.top_k > 0:
            self._add(llama_cpp.llama_sampler_init_top_k(config.top_k))
        if config.typical_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_typical(config.typical_p, 1))
        if config.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(config.top_p, 1))
        if config.min_p > 0.0:
            self._add(llama_cpp.llama_sampler_init_min_p(config.min_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(config.temperature))
        self._add(llama_cpp.llama_sampler_init_dist(config.resolved_seed()))

    def _add(self, sampler: llama_cpp.llama_sampler_p) -> None:
        llama_cpp.llama_sampler_chain_add(self.chain, sampler)

    def prime(self, prompt: list[int]) -> None:
        """Let the penalties see the prompt's last tokens (the grammar never sees the prompt)."""
        if self.penalties is not None and self.repeat_last_n > 0:
            for token in prompt[-self.repeat_last_n:]:
                llama_cpp.llama_sampler_accept(self.penalties, token)

    def attach(self, ctx: llama_cpp.llama_context_p, seq: int) -> bool:
        """Let ``llama_decode`` sample sequence ``seq`` with this chain; False when it cannot.

        Inference thread only, once per chain (llama.cpp aborts on a second attach).
        """
        if not self.offloadable or self._attached is not None:
            return False
        if llama_cpp.llama_set_sampler(ctx, seq, self.chain):
            self._attached = (ctx, seq)
            return True
        return False

    def sample(self, ctx: llama_cpp.llama_context_p, index: int) -> int:
        """Pick the next token from the logits at batch ``index`` (and accept it)."""
        if self._attached is not None:
            token: int = llama_cpp.llama_get_sampled_token_ith(ctx, index)
            if token >= 0:
                return token
        sampled: int = llama_cpp.llama_sampler_sample(self.chain, ctx, index)
        return sampled

    def free(self) -> None:
        if self._attached is not None:  # detach first: the context must not keep a freed chain
            ctx, seq = self._attached
            llama_cpp.llama_set_sampler(ctx, seq, None)
            self._attached = None
        if self.chain:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None


def _grammar_sampler(vocab: Vocab, grammar: str) -> llama_cpp.llama_sampler_p:
    sampler: llama_cpp.llama_sampler_p = llama_cpp.llama_sampler_init_grammar(
        vocab.handle, grammar.encode(), b"root")
    if not sampler:
        raise InvalidRequestError("failed to parse the grammar (format)")
    return sampler
