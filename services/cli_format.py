"""Output formatting shared by CLI commands: sizes, relative times and aligned tables as Ollama prints them."""

from __future__ import annotations

from datetime import datetime, timezone


def human_bytes(size: int) -> str:
    """Decimal units like Ollama's ``format.HumanBytes``: ``98 MB``, ``1.9 GB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _duration_words(seconds: float) -> str:
    seconds = abs(seconds)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"),
                       (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "Less than a second"


def human_time_ago(text: str, now: datetime | None = None) -> str:
    """``2 minutes ago`` for an RFC3339 timestamp."""
    now = now or datetime.now(timezone.utc)
    seconds = (now - _parse_time(text)).total_seconds()
    words = _duration_words(seconds)
    return "Less than a second ago" if words.startswith("Less") else f"{words} ago"


def human_until(text: str, now: datetime | None = None) -> str:
    """``4 minutes from now``, ``Forever`` for pinned models, ``Stopping...`` once past."""
    moment = _parse_time(text)
    if moment.year >= 2200:
        return "Forever"
    now = now or datetime.now(timezone.utc)
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return "Stopping..."
    words = _duration_words(seconds)
    return "Less than a second" if words.startswith("Less") else f"{words} from now"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by at least three spaces (Ollama's tabwriter layout)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["".join(str(cell).ljust(w + 3) for cell, w in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)
