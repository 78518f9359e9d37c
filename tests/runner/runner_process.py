"""Start and stop a real ``python -m runner`` process on a unix socket, and read its log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def spawn(model_path: str, socket: Path, *extra: str) -> subprocess.Popen:
    """Start a runner whose JSON log lines go to ``runner.log`` beside its socket."""
    with open(socket.parent / "runner.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "runner", "--model", model_path, "--socket", str(socket),
             "--ctx-size", "512", "--threads", "2", *extra],
            cwd=REPO, stderr=log)


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.terminate()
    return process.wait(timeout=10)


def events(socket: Path) -> list[dict]:
    lines = (socket.parent / "runner.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]
