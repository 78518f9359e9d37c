"""Text formatting shared by CLI commands, as Ollama's ``format`` package and tablewriter print it."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from prompt_toolkit.utils import get_cwidth

_THOUSAND, _MILLION, _BILLION = 1_000, 1_000_000, 1_000_000_000


def human_bytes(size: int) -> str:
    """Decimal units like Ollama's ``format.HumanBytes``: ``98 MB``, ``1.9 GB``, ``1 KB``, ``512 B``."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            value = size / scale
            break
    else:
        return f"{int(size)} B"
    if value >= 10 or value == math.trunc(value):
        return f"{int(value)} {unit}"
    return f"{value:.1f} {unit}"


def human_number(count: int) -> str:
    """Ollama's ``format.HumanNumber``: ``7B``, ``1.5B``, ``134.52M``, ``12K``."""
    if count >= _BILLION:
        value = count / _BILLION
        return f"{value:.0f}B" if value == math.floor(value) else f"{value:.1f}B"
    if count >= _MILLION:
        value = count / _MILLION
        return f"{value:.0f}M" if value == math.floor(value) else f"{value:.2f}M"
    if count >= _THOUSAND:
        return f"{count / _THOUSAND:.0f}K"
    return str(count)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def human_duration(seconds: float) -> str:
    """Ollama's ``humanDuration``: ``Less than a second``, ``About a minute``, ``3 hours``..."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def human_time(text: str | None, zero: str = "Never", now: datetime | None = None) -> str:
    """Ollama's ``format.HumanTime``: ``2 minutes ago``, ``4 minutes from now``, ``Forever``."""
    if not text or text.startswith("0001-01-01"):
        return zero
    now = now or datetime.now(timezone.utc)
    delta = (now - _parse_time(text)).total_seconds()
    if int(delta / 3600) // 24 // 365 < -20:
        return "Forever"
    if delta < 0:
        return human_duration(-delta) + " from now"
    return human_duration(delta) + " ago"


def human_until(text: str, now: datetime | None = None) -> str:
    """The UNTIL column of ``ps``: ``Stopping...`` once the expiry has passed."""
    now = now or datetime.now(timezone.utc)
    if text and not text.startswith("0001-01-01") and _parse_time(text) < now:
        return "Stopping..."
    return human_time(text, "Never", now)


def go_duration(nanoseconds: int | float) -> str:
    """Go's ``time.Duration.String``: ``1.234s``, ``52.3ms``, ``1m2.5s``, ``0s``."""
    ns = int(nanoseconds)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return sign + _fraction(ns, 1_000) + "µs"
    if ns < 1_000_000_000:
        return sign + _fraction(ns, 1_000_000) + "ms"
    hours, rest = divmod(ns, 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _fraction(rest, 10**9) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def width(text: str) -> int:
    """Terminal cells taken by ``text`` (wide characters count twice)."""
    return sum(get_cwidth(ch) for ch in text)


def _wrap(cell: str, limit: int) -> list[str]:
    """Words packed into lines of at most ``limit`` cells (a longer word keeps its own line)."""
    if width(cell) <= limit:
        return [cell]
    lines: list[str] = []
    current = ""
    for word in cell.split():
        candidate = f"{current} {word}" if current else word
        if current and width(candidate) > limit:
            lines.append(current)
            current = word
        else:
            current = candidate
    return lines + [current]


def table(headers: list[str] | None, rows: list[list[str]], *, padding: str = "    ",
          col_width: int = 30) -> str:
    """Rows laid out like Ollama's tablewriter (no border, no whitespace, 4-space padding).

    Every cell, the last one included, is padded to its column's width and followed by the
    padding, so lines carry trailing spaces exactly as Ollama's do. Cells wider than
    ``col_width`` wrap at spaces onto extra lines. Returns the text with a final newline.
    """
    all_rows = ([headers] if headers else []) + rows
    if not all_rows:
        return ""
    columns = max(len(r) for r in all_rows)
    wrapped = [[_wrap(str(r[i]) if i < len(r) else "", col_width) for i in range(columns)]
               for r in all_rows]
    widths = [max(width(line) for row in wrapped for line in row[i]) for i in range(columns)]
    out = []
    for row in wrapped:
        for n in range(max(len(cell) for cell in row)):
            parts = []
            for cell, w in zip(row, widths):
                text = cell[n] if n < len(cell) else ""
                parts.append(text + " " * (w - width(text)) + padding)
            out.append("".join(parts))
    return "\n".join(out) + "\n"
