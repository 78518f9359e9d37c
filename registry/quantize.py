"""Quantization for ``/api/create``'s ``quantize``: llama.cpp's quantizer in a child process.

The registry never loads llama.cpp itself: ``python -m registry.quantize SRC DST FTYPE`` runs
``llama_model_quantize`` (llama-cpp-python's low-level binding) in a subprocess, and the parent
turns its per-tensor log lines (``[  3/ 12] name ...``) into Ollama's progress objects. The output
goes to a temp file in the blob directory (swept on restart if we die) and is adopted by digest.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog

from services.errors import CorralError, InvalidRequestError

# Ollama's list (``ggml.ParseFileType``) mapped to llama.cpp's ``llama_ftype``.
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_K_S": 14, "Q4_K_M": 15, "Q8_0": 7}
QUANTIZABLE_SOURCES = ("F16", "BF16", "F32")
PROGRESS_DIGEST = "0000000000000000000"  # what Ollama puts in quantization progress lines

_TENSOR_LINE = re.compile(rb"^\[\s*(\d+)/\s*(\d+)\]")
_STDERR_TAIL = 20

log = structlog.get_logger()


def quantize_target(text: str) -> str:
    """The canonical type name for ``text`` (case-insensitive), or Ollama's 400."""
    name = text.upper()
    if name not in FILE_TYPES:
        raise InvalidRequestError(f"unsupported quantization type {text} - supported types are "
                                  f"{', '.join(FILE_TYPES)}")
    return name


def check_source(source_type: str) -> None:
    """Ollama only quantizes float models."""
    if source_type not in QUANTIZABLE_SOURCES:
        raise InvalidRequestError("quantization is only supported for F16, BF16 and F32 models")


async def quantize_file(source: Path, target: Path, file_type: str,
                        on_progress: Callable[[float], None]) -> None:
    """Write ``source`` quantized to ``file_type`` into ``target``; report fractions done.

    Raises ``CorralError`` with llama.cpp's last log lines when the quantizer fails; the child
    is killed if the caller is cancelled.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "registry.quantize", str(source), str(target),
        str(FILE_TYPES[file_type]), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    tail: list[bytes] = []
    try:
        assert process.stderr is not None
        async for line in process.stderr:
            if match := _TENSOR_LINE.match(line):
                on_progress(int(match.group(1)) / max(int(match.group(2)), 1))
            tail = (tail + [line.rstrip()])[-_STDERR_TAIL:]
        returncode = await process.wait()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if returncode != 0:
        detail = b" | ".join(tail[-3:]).decode("utf-8", errors="replace")
        log.warning("quantize_failed", returncode=returncode, detail=detail)
        raise CorralError(f"quantization failed: {detail or f'exit status {returncode}'}")


async def quantize_progress(source: Path, target: Path, file_type: str, source_type: str,
                            total: int) -> AsyncIterator[dict[str, Any]]:
    """Run ``quantize_file`` and yield Ollama's progress objects while it works."""
    status = f"quantizing {source_type} model to {file_type}"
    updates: asyncio.Queue[float | None] = asyncio.Queue()
    task = asyncio.create_task(quantize_file(source, target, file_type, updates.put_nowait))
    task.add_done_callback(lambda _t: updates.put_nowait(None))
    try:
        yield {"status": status, "digest": PROGRESS_DIGEST, "total": total, "completed": 0}
        while (fraction := await updates.get()) is not None:
            yield {"status": status, "digest": PROGRESS_DIGEST, "total": total,
                   "completed": int(total * fraction)}
        await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def main(argv: list[str]) -> int:
    """The child: ``SRC DST FTYPE``; exit status 0 on success."""
    import ctypes  # noqa: PLC0415 - see below

    import llama_cpp  # noqa: PLC0415 - only ever imported in this child process

    source, target, file_type = argv
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(file_type)
    params.nthread = 0
    return 0 if llama_cpp.llama_model_quantize(
        source.encode(), target.encode(), ctypes.byref(params)) == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
