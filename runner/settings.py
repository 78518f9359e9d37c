"""The runner's settings: command-line flags from the gateway, read once, frozen."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

FLASH_ATTENTION = ("auto", "on", "off")
CACHE_TYPES = ("f16", "q8_0", "q4_0")


@dataclass(frozen=True)
class RunnerSettings:
    """Everything one runner process needs to serve one model."""

    model: str
    """Path of the GGUF file to load."""
    socket: str = ""
    """Unix socket path to listen on (``unix:PATH``); empty only for in-process use."""
    ctx_size: int = 4096
    """Context window of each slot, in tokens (the llama context holds ``ctx_size * parallel``)."""
    parallel: int = 1
    """Number of slots: requests decoded together in one continuous batch."""
    threads: int = 0
    """CPU threads for llama.cpp; 0 means ``os.cpu_count()``."""
    batch_size: int = 512
    """Most tokens evaluated in one ``llama_decode`` call (prompt chunks plus one per slot)."""
    parent_pid: int = 0
    """Exit when this process is gone; 0 disables the watch."""
    embedding: bool = False
    """Serve embeddings (``Embed``) instead of text generation."""
    lora: tuple[str, ...] = ()
    """LoRA adapter GGUF files applied to the model (scale 1), as Ollama's ``ADAPTER``."""
    use_mmap: bool = True
    """Map the GGUF file (False: read the weights into memory; Ollama's ``use_mmap``)."""
    use_mlock: bool = False
    """Lock the weights in RAM so they are never swapped out (``use_mlock``)."""
    flash_attention: str = "auto"
    """``auto`` (llama.cpp decides), ``on`` or ``off`` (``OLLAMA_FLASH_ATTENTION``)."""
    cache_type: str = "f16"
    """K and V cache type: ``f16``, ``q8_0`` or ``q4_0`` (``OLLAMA_KV_CACHE_TYPE``)."""
    debug: bool = False
    """Debug logging, including llama.cpp's own log lines."""
    projector: str = ""
    """Multimodal projector GGUF (``--mmproj``): the model then takes images."""
    backend_sampling: bool = True
    """Sample inside ``llama_decode`` where the request's chain allows (``runner/sampling.py``)."""
    stream_interval_ms: int = 0
    """Least time between two hand-offs of output to the event loop (first text and ends go
    at once); 0 hands off every engine step (``Outbox`` in ``runner/slots.py`` says why that
    is the default)."""
    profile: bool = False
    """Time each phase of every engine step and log ``step_profile`` (``runner/steptimer.py``)."""

    @property
    def n_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    @property
    def n_ctx(self) -> int:
        """Total context allocated across all slots."""
        return self.ctx_size * self.parallel

    @property
    def n_batch(self) -> int:
        """Batch capacity: a whole input for embeddings, at least one token per slot otherwise."""
        if self.embedding:
            return max(self.batch_size, self.ctx_size)
        return max(self.batch_size, self.parallel)

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"


def parse_args(argv: list[str] | None = None) -> RunnerSettings:
    """Build settings from ``python -m runner`` flags."""
    parser = argparse.ArgumentParser(prog="python -m runner",
                                     description="Serve one GGUF model over gRPC.")
    parser.add_argument("--model", required=True, help="path of the GGUF model file")
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    parser.add_argument("--ctx-size", type=_positive, default=4096, help="context tokens per slot")
    parser.add_argument("--parallel", type=_positive, default=1, help="number of slots")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    parser.add_argument("--batch-size", type=_positive, default=512, help="tokens per decode call")
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    parser.add_argument("--embedding", action="store_true", help="serve embeddings")
    parser.add_argument("--lora", action="append", default=[], metavar="PATH",
                        help="LoRA adapter GGUF to apply (repeatable)")
    parser.add_argument("--mmproj", default="", metavar="PATH",
                        help="multimodal projector GGUF (the model then takes images)")
    parser.add_argument("--no-mmap", action="store_true", help="read the model into memory")
    parser.add_argument("--mlock", action="store_true", help="lock the model in RAM")
    parser.add_argument("--flash-attn", choices=FLASH_ATTENTION, default="auto",
                        help="flash attention (default auto: llama.cpp decides)")
    parser.add_argument("--cache-type", choices=CACHE_TYPES, default="f16",
                        help="K/V cache type (quantised types need flash attention)")
    parser.add_argument("--debug", action="store_true", help="debug logging")
    parser.add_argument("--profile", action="store_true", help="log per-step phase timings")
    parser.add_argument("--stream-interval-ms", type=int, default=0,
                        help="least ms between output hand-offs (0: every step)")
    parser.add_argument("--cpu-sampling", action="store_true",
                        help="sample every slot on the CPU, never inside llama_decode")
    args = parser.parse_args(argv)
    return RunnerSettings(
        model=args.model, socket=args.socket, ctx_size=args.ctx_size, parallel=args.parallel,
        threads=max(args.threads, 0), batch_size=args.batch_size, parent_pid=args.parent_pid,
        embedding=args.embedding, lora=tuple(args.lora), use_mmap=not args.no_mmap,
        use_mlock=args.mlock, flash_attention=args.flash_attn, cache_type=args.cache_type,
        debug=args.debug, profile=args.profile, backend_sampling=not args.cpu_sampling,
        stream_interval_ms=max(args.stream_interval_ms, 0), projector=args.mmproj)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
