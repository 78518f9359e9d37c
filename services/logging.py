"""structlog configuration, applied once in each process's ``main``."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(process: str, *, debug: bool = False, json: bool | None = None) -> None:
    """Log to stderr as JSON lines (or console lines on a TTY), tagged with the process name.

    JSON is the default off a TTY so a parent process (``corral serve``, the gateway for its
    runners) can relay lines without re-parsing free text.
    """
    level = logging.DEBUG if debug else logging.INFO
    if json is None:
        json = not sys.stderr.isatty()
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def _add_process(process: str):
    def processor(_logger, _method, event_dict):
        event_dict.setdefault("process", process)
        return event_dict

    return processor
