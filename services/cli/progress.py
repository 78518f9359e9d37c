"""Progress on stderr as Ollama draws it, rendered with rich.

Status lines become spinners (``pulling manifest ⠋``) that settle into plain lines; lines that
carry a digest become bars (``pulling 6a0746a1ec1a: 45% ▕███    ▏ 2.1 GB/4.7 GB  35 MB/s  1m15s``).
When stderr is not a terminal nothing is redrawn: each status is printed once as a plain line.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TaskID
from rich.text import Text

from services.cli_format import human_bytes

SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _eta(seconds: float | None) -> str:
    """Ollama's two-unit remaining time: ``59m59s``, ``1h15m``, ``99h+``."""
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds >= 100 * 3600:
        return "99h+"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds}s"


class _OllamaLine(ProgressColumn):
    """The whole line for one task: a spinner or a bar, depending on the task's ``kind``."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def render(self, task: Task) -> Text:
        if task.fields.get("kind") == "bar":
            return Text(self._bar(task))
        text = task.description
        if not task.finished:
            frame = SPINNER_FRAMES[int((time.monotonic() - task.fields["since"]) * 10) % 10]
            text = f"{text} {frame}" if text else frame
        return Text(text)

    def _bar(self, task: Task) -> str:
        total, done = int(task.total or 0), int(task.completed)
        percent = done / total * 100 if total else 0.0
        pre = f"{task.description} {percent:3.0f}%"
        if task.finished:
            suffix = f"{human_bytes(total):>6}" + " " * 7 + " " * 10 + " " * 8
        else:
            suffix = f"{human_bytes(done):>6}/{human_bytes(total):>6}"
            speed = task.speed or 0
            if speed > 0:
                suffix += f"  {human_bytes(int(speed)):>6}/s  {_eta(task.time_remaining):>6}"
            else:
                suffix += " " * 18
        room = max(self.console.width - len(pre) - len(suffix) - 5, 0)
        filled = int(room * percent / 100)
        return f"{pre} ▕{'█' * filled}{' ' * (room - filled)}▏ {suffix}"


class ProgressDisplay:
    """Renders a stream of Ollama ``ProgressResponse`` objects (pull, push, create).

    Use as a context manager; ``update(obj)`` takes each NDJSON object. ``verb`` names
    bars without a status (``pushing abc123...``); ``pull_labels`` gives pull's bar labels
    (``pulling 6a0746a1ec1a:``). Not a TTY: plain lines, each status once as it settles.
    """

    def __init__(self, *, verb: str = "pulling", stream: TextIO | None = None,
                 interactive: bool | None = None, pull_labels: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.console = Console(file=self.stream, force_terminal=self.interactive or None,
                               highlight=False)
        self.verb = verb
        self.pull_labels = pull_labels
        self.progress: Progress | None = None
        self._status: str | None = None
        self._pending = False
        self._status_task: TaskID | None = None
        self._bars: dict[str, TaskID] = {}
        self._printed: set[str] = set()

    def __enter__(self) -> ProgressDisplay:
        if self.interactive:
            self.progress = Progress(_OllamaLine(self.console), console=self.console,
                                     transient=False, refresh_per_second=10,
                                     redirect_stdout=False, redirect_stderr=False)
            self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Settle every spinner into a plain line and stop redrawing."""
        self._finish_status()
        if self.progress is not None:
            self.progress.refresh()
            self.progress.stop()
            self.progress = None

    def update(self, obj: dict[str, Any]) -> None:
        """Show one progress object: a bar when it names a digest, else a status line."""
        digest, status = obj.get("digest") or "", obj.get("status") or ""
        if digest:
            completed, total = int(obj.get("completed") or 0), int(obj.get("total") or 0)
            if self.pull_labels and completed == 0:
                return  # Ollama skips a layer's announcement line (no 0% bars)
            self._bar(digest, status, total, completed)
        elif status != self._status:
            self.set_status(status)

    def set_status(self, status: str) -> None:
        """Start a new spinner line (the previous one settles)."""
        self._finish_status()
        self._status, self._pending = status, True
        if self.progress is not None:
            self._status_task = self.progress.add_task(status, total=1, kind="spinner",
                                                       since=time.monotonic())

    def rename_status(self, status: str) -> None:
        """Change the current spinner's text in place (``copying file ... 45%``)."""
        if self.progress is not None and self._status_task is not None:
            self.progress.update(self._status_task, description=status)
        self._status = status

    def _finish_status(self) -> None:
        """Settle the current spinner; in plain mode, that is when its final text is printed."""
        if self.progress is not None and self._status_task is not None:
            self.progress.update(self._status_task, completed=1)
        elif self.progress is None and self._pending and self._status:
            self._plain(self._status)
        self._status_task, self._pending = None, False

    def _bar(self, digest: str, status: str, total: int, completed: int) -> None:
        label = self._bar_label(digest, status)
        self._finish_status()
        if self.progress is None:
            if total and completed >= total:
                self._plain(f"{label} 100% {human_bytes(total)}")
            return
        task = self._bars.get(digest)
        if task is None:
            task = self.progress.add_task(label, total=max(total, 1), completed=0, kind="bar")
            self._bars[digest] = task
        self.progress.update(task, completed=min(completed, total) if total else 0,
                             total=max(total, 1))

    def _bar_label(self, digest: str, status: str) -> str:
        if self.pull_labels:
            short = digest.removeprefix("sha256:").strip()[:12]
            return f"pulling {short}:"
        return status or f"{self.verb} {digest[7:19]}..."

    def _plain(self, line: str) -> None:
        if line and line not in self._printed:
            self._printed.add(line)
            print(line, file=self.stream, flush=True)


class Spinner:
    """A bare spinner on stderr while waiting for a model's first token; cleared on stop.

    Does nothing unless stderr is a terminal, so piped output stays clean.
    """

    def __init__(self, message: str = "", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.progress: Progress | None = None
        if self.stream.isatty():
            console = Console(file=self.stream, highlight=False)
            self.progress = Progress(_OllamaLine(console), console=console, transient=True,
                                     refresh_per_second=10, redirect_stdout=False,
                                     redirect_stderr=False)
            self.progress.add_task(message, total=1, kind="spinner", since=time.monotonic())
            self.progress.start()

    def stop(self) -> None:
        """Clear the spinner (idempotent)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
