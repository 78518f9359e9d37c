"""structlog configuration, applied once in each process's ``main``.

Every process writes its log lines to the same stderr (``corral serve``'s children inherit it,
runners write into a pipe the gateway relays), so each line must reach the file descriptor in
one ``write``: ``print`` writes the text and its newline separately and buffers big lines in
pieces, which let two processes' JSON lines interleave. ``LineWriter`` writes a whole line at
once (atomic on a pipe up to ``PIPE_BUF``, and on a shared file offset whatever its size).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import structlog


class LineWriter:
    """A text sink that hands the OS one complete line per ``write`` call."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self._write_all((complete + "\n").encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                data, self._pending = self._pending.encode("utf-8", "replace"), ""
                self._write_all(data)

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError:  # stderr closed or broken: logging must never take the process down
                return
            view = view[written:]


class LineLogger:
    """A structlog logger: each rendered event becomes one ``LineWriter`` line."""

    def __init__(self, writer: LineWriter) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.write(message + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


class LineLoggerFactory:
    def __init__(self, writer: LineWriter) -> None:
        self._logger = LineLogger(writer)

    def __call__(self, *_args: Any) -> LineLogger:
        return self._logger


def stderr_writer() -> LineWriter:
    return LineWriter(sys.stderr.fileno())


def configure_logging(process: str, *, debug: bool = False, json: bool | None = None) -> None:
    """Log to stderr as JSON lines (or console lines on a TTY), tagged with the process name.

    JSON is the default off a TTY so a parent process (``corral serve``, the gateway for its
    runners) can relay lines without re-parsing free text.
    """
    level = logging.DEBUG if debug else logging.INFO
    if json is None:
        json = not sys.stderr.isatty()
    writer = stderr_writer()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_process(process),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=LineLoggerFactory(writer),
        cache_logger_on_first_use=True,
    )
    # Library records (asyncio, grpc, aiohttp) go through the same writer, a line per record.
    logging.basicConfig(level=logging.WARNING, stream=writer)


def _add_process(process: str) -> structlog.types.Processor:
    def processor(_logger: Any, _method: str,
                  event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
        event_dict.setdefault("process", process)
        return event_dict

    return processor
