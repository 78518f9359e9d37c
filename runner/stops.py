"""Turning a slot's token bytes into safe-to-emit text: UTF-8 reassembly and stop sequences."""

from __future__ import annotations

import codecs


class StopMatcher:
    """Finds stop sequences in streamed text and holds back what might begin one.

    ``feed(text)`` returns ``(emit, stopped)``: ``emit`` is text that can no longer be part of a
    stop sequence; once ``stopped`` is true, the stop sequence and everything after it are dropped
    and the matcher must not be fed again. ``flush()`` releases held-back text at the end.
    """

    def __init__(self, stops: list[str] | tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self._stops:
            return text, False
        buffer = self._pending + text
        cut = self._earliest_stop(buffer)
        if cut is not None:
            self._pending = ""
            return buffer[:cut], True
        keep = self._partial_suffix(buffer)
        self._pending = buffer[len(buffer) - keep:] if keep else ""
        return buffer[:len(buffer) - keep], False

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text

    def _earliest_stop(self, buffer: str) -> int | None:
        found = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        return min(found) if found else None

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest tail of ``buffer`` that is a proper prefix of some stop."""
        for length in range(min(self._hold, len(buffer)), 0, -1):
            tail = buffer[-length:]
            if any(s.startswith(tail) for s in self._stops):
                return length
        return 0


class TextStream:
    """Bytes of generated tokens in, emit-ready text out (UTF-8 split across tokens, stops)."""

    def __init__(self, stops: list[str] | tuple[str, ...]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(stops)

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """Text ready to emit after ``piece``, and whether a stop sequence was reached."""
        text = self._decoder.decode(piece)
        if not text:
            return "", False
        return self._stops.feed(text)

    def finish(self) -> str:
        """Everything still held back, at the natural end of generation."""
        tail = self._decoder.decode(b"", final=True)
        text, stopped = self._stops.feed(tail) if tail else ("", False)
        return text if stopped else text + self._stops.flush()
