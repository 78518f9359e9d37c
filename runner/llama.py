"""A thin, typed layer over llama-cpp-python's low-level C API.

Only the calls the runner needs, wrapped once so the token loop reads as Python: loading a model
and its context, tokenizing, turning tokens into bytes, and a reusable ``llama_batch``.
Everything here except the vocabulary helpers must be used from the inference thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llama_cpp import llama_cpp

import structlog

from services.errors import CorralError, InvalidRequestError

log = structlog.get_logger()

NO_LOG = llama_cpp.llama_log_callback(lambda _level, _text, _data: None)


def silence_llama_logs() -> None:
    """Route llama.cpp's own C logging to a no-op callback (kept alive by this module)."""
    llama_cpp.llama_log_set(NO_LOG, ctypes.c_void_p(0))


_CACHE_TYPES = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0,
                "q4_0": llama_cpp.GGML_TYPE_Q4_0}
_FLASH_ATTENTION = {"auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
                    "on": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                    "off": llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED}


@dataclass(frozen=True)
class ContextConfig:
    """How to load the model and size the llama context: total tokens, sequences, batch,
    threads, mode, and the memory knobs (mmap/mlock, flash attention, K/V cache type)."""

    n_ctx: int
    n_seq: int
    n_batch: int
    n_threads: int
    embeddings: bool = False
    lora: tuple[str, ...] = ()
    use_mmap: bool = True
    use_mlock: bool = False
    flash_attention: str = "auto"
    cache_type: str = "f16"

    @property
    def load_mode(self) -> int:
        """llama.cpp's ``llama_load_mode`` for ``use_mmap``/``use_mlock``."""
        if self.use_mlock:
            return llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK if self.use_mmap \
                else llama_cpp.LLAMA_LOAD_MODE_MLOCK
        return llama_cpp.LLAMA_LOAD_MODE_MMAP if self.use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE


class Vocab:
    """Tokenizer of a loaded model; read-only, safe to call from any thread."""

    def __init__(self, model: llama_cpp.llama_model_p) -> None:
        # llama_cpp's ctypes functions are untyped (Any): each result is typed where it lands
        self._vocab: llama_cpp.llama_vocab_p = llama_cpp.llama_model_get_vocab(model)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.n_tokens: int = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes] = {}

    @property
    def handle(self) -> llama_cpp.llama_vocab_p:
        return self._vocab

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """Token ids of ``text``; ``add_special`` adds BOS when the model wants one."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), tokens, capacity,
                                     add_special, parse_special)
        if n < 0:
            raise CorralError(f"tokenization needs {-n} tokens, more than {capacity}")
        return tokens[:n]

    def detokenize(self, tokens: list[int]) -> str:
        """Text of ``tokens``, special tokens rendered; bad ids raise ``InvalidRequestError``."""
        bad = [t for t in tokens if not 0 <= t < self.n_tokens]
        if bad:
            raise InvalidRequestError(f"token id {bad[0]} is outside the vocabulary")
        ids = (llama_cpp.llama_token * max(len(tokens), 1))(*tokens)
        capacity = 64 + 16 * len(tokens)
        while True:
            text = ctypes.create_string_buffer(capacity)
            n = llama_cpp.llama_detokenize(self._vocab, ids, len(tokens), text, capacity,
                                           False, True)
            if n >= 0:
                return text.raw[:n].decode("utf-8", errors="replace")
            capacity = -n

    def piece(self, token: int) -> bytes:
        """Bytes of one token (special tokens rendered), cached per id; inference thread only."""
        cached = self._pieces.get(token)
        if cached is None:
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, True)
            cached = self._piece_buf.raw[:max(n, 0)]
            self._pieces[token] = cached
        return cached

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation (EOS, EOT, ...)."""
        eog: bool = llama_cpp.llama_vocab_is_eog(self._vocab, token)
        return eog


def _progress_callback(report: Callable[[float], None], every_s: float = 1.0) -> Any:
    """A llama.cpp load-progress callback calling ``report`` at most once per ``every_s``."""
    last = [-every_s]

    def callback(progress: float, _data: Any) -> bool:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            with contextlib.suppress(Exception):
                report(progress)
        return True  # go on loading

    return llama_cpp.llama_progress_callback(callback)


class Model:
    """A loaded GGUF model and one context over it; ``close()`` frees both."""

    def __init__(self, path: str, config: ContextConfig,
                 on_progress: Callable[[float], None] | None = None) -> None:
        """Load ``path``; ``on_progress(fraction)`` is called now and then as the weights load."""
        llama_cpp.llama_backend_init()
        self._ctx: llama_cpp.llama_context_p | None = None  # None until opened, after close()
        params = llama_cpp.llama_model_default_params()
        params.load_mode = config.load_mode
        self.load_mode = (llama_cpp.llama_load_mode_name(config.load_mode) or b"?").decode()
        if on_progress is not None:
            self._progress = _progress_callback(on_progress)  # kept alive while loading
            params.progress_callback = self._progress
        self._model: llama_cpp.llama_model_p | None = llama_cpp.llama_model_load_from_file(
            path.encode(), params)
        if not self._model:
            raise CorralError(f"failed to load model {path}")
        self.path = path
        self.vocab = Vocab(self._model)
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(self._model)
        self.n_embd: int = llama_cpp.llama_model_n_embd(self._model)
        self.n_embd_inp: int = llama_cpp.llama_model_n_embd_inp(self._model)  # what images feed in
        try:
            self._open_context(config)
            self._apply_adapters(config.lora)
        except BaseException:
            self.close()
            raise

    @property
    def handle(self) -> llama_cpp.llama_model_p:
        assert self._model is not None, "the model is closed"
        return self._model

    @property
    def ctx(self) -> llama_cpp.llama_context_p:
        """The llama context, from construction until ``close()``."""
        assert self._ctx is not None, "the model is closed"
        return self._ctx

    def _open_context(self, config: ContextConfig) -> None:
        self.cache_type = config.cache_type
        self._ctx = self._new_context(config, llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED,
                                      quiet=config.cache_type != "f16")
        if not self._ctx:  # a model whose attention cannot use flash attention: f16 instead
            log.warning("kv_cache_type_unsupported", kv_cache_type=config.cache_type,
                        using="f16", reason="the context could not be created with it")
            self.cache_type = "f16"
            self._ctx = self._new_context(config, llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED)
        unpooled = llama_cpp.llama_pooling_type(self._ctx) == llama_cpp.LLAMA_POOLING_TYPE_NONE
        if config.embeddings and unpooled:  # no pooling in the GGUF: average the tokens
            llama_cpp.llama_free(self._ctx)
            self._ctx = self._new_context(config, llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        self.n_ctx: int = llama_cpp.llama_n_ctx(self._ctx)
        self.memory: llama_cpp.llama_memory_t | None = llama_cpp.llama_get_memory(self._ctx)

    def _apply_adapters(self, paths: tuple[str, ...]) -> None:
        """Load each LoRA adapter and set them all on the context at scale 1.

        The model owns its adapters and frees them with itself; freeing them here too crashes.
        """
        loaded = []
        for path in paths:
            adapter = llama_cpp.llama_adapter_lora_init(self._model, path.encode())
            if not adapter:
                raise CorralError(f"failed to load adapter {path}: it is not a LoRA adapter "
                                  f"for this model")
            loaded.append(adapter)
        if loaded:
            n = len(loaded)
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*loaded)
            scales = (ctypes.c_float * n)(*[1.0] * n)
            if llama_cpp.llama_set_adapters_lora(self._ctx, adapters, n, scales) != 0:
                raise CorralError("failed to apply the LoRA adapters")

    def _new_context(self, config: ContextConfig, pooling: int,
                     quiet: bool = False) -> llama_cpp.llama_context_p | None:
        """A context; ``quiet``: None instead of raising when llama.cpp refuses it."""
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = config.n_ctx
        params.n_seq_max = config.n_seq
        params.n_batch = params.n_ubatch = config.n_batch
        params.n_threads = params.n_threads_batch = config.n_threads
        params.embeddings = config.embeddings
        params.pooling_type = pooling
        params.flash_attn_type = _FLASH_ATTENTION[config.flash_attention]
        params.type_k = params.type_v = _CACHE_TYPES[self.cache_type]
        params.no_perf = True
        ctx: llama_cpp.llama_context_p | None = llama_cpp.llama_init_from_model(self._model, params)
        if not ctx and quiet:
            return None
        if not ctx:
            raise CorralError(f"failed to create a llama context of {config.n_ctx} tokens")
        return ctx

    @property
    def n_threads(self) -> int:
        """Threads llama.cpp decodes with (read back from the context)."""
        n_threads: int = llama_cpp.llama_n_threads(self._ctx)
        return n_threads

    @property
    def n_batch(self) -> int:
        n_batch: int = llama_cpp.llama_n_batch(self._ctx)
        return n_batch

    def forget(self, seq: int, keep: int = 0) -> None:
        """Drop sequence ``seq``'s KV cells from position ``keep`` on."""
        if self.memory:
            llama_cpp.llama_memory_seq_rm(self.memory, seq, keep, -1)

    @property
    def can_shift(self) -> bool:
        """Whether KV cells can be moved to other positions (not every memory type can)."""
        return bool(self.memory) and bool(llama_cpp.llama_memory_can_shift(self.memory))

    def shift(self, seq: int, keep: int, discard: int, end: int) -> None:
        """Drop cells ``[keep, keep + discard)`` of ``seq`` and move the rest down by ``discard``."""
        llama_cpp.llama_memory_seq_rm(self.memory, seq, keep, keep + discard)
        llama_cpp.llama_memory_seq_add(self.memory, seq, keep + discard, end, -discard)

    def clear(self) -> None:
        """Drop every KV cell of every sequence."""
        if self.memory:
            llama_cpp.llama_memory_clear(self.memory, True)

    def decode(self, batch: Batch) -> None:
        """Evaluate ``batch``; a failure raises ``CorralError`` and leaves the runner usable."""
        batch.raw.n_tokens = batch.n
        rc = llama_cpp.llama_decode(self._ctx, batch.raw)
        if rc != 0:
            raise CorralError(f"llama_decode failed with status {rc}")

    def sequence_embedding(self, seq: int) -> list[float]:
        """The pooled embedding of sequence ``seq`` after a decode."""
        values = llama_cpp.llama_get_embeddings_seq(self._ctx, seq)
        if not values:
            raise CorralError("the model produced no embedding")
        embedding: list[float] = values[:self.n_embd]  # slicing a ctypes float* makes a list
        return embedding

    def close(self) -> None:
        """Free the context and the model (with its adapters); idempotent."""
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None


class Batch:
    """A reusable ``llama_batch`` of up to ``capacity`` tokens, one sequence id each."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.raw = llama_cpp.llama_batch_init(capacity, 0, 1)
        self._token, self._pos = self.raw.token, self.raw.pos
        self._seq, self._logits = self.raw.seq_id, self.raw.logits
        for i in range(capacity):
            self.raw.n_seq_id[i] = 1
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token; returns its index in the batch (the logits index when requested)."""
        i = self.n
        self._token[i] = token
        self._pos[i] = pos
        self._seq[i][0] = seq
        self._logits[i] = logits
        self.n = i + 1
        return i

    @property
    def room(self) -> int:
        return self.capacity - self.n

    def free(self) -> None:
        llama_cpp.llama_batch_free(self.raw)
