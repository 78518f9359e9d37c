"""Running the ``corral`` CLI in the e2e tests: one-shot commands and the interactive REPL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pexpect

from tests.e2e.server import ROOT

PROMPT = ">>> "  # the REPL's prompt
PLACEHOLDER = "Send a message (/? for help)"


def corral_cli(*args: str, host: str, stdin: str | None = None, cwd: Path = ROOT,
               **env: str) -> subprocess.CompletedProcess:
    """``python -m services.cli ARGS`` with a clean environment and auto-start off."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CORRAL_"))}
    full_env = {**base, "OLLAMA_HOST": host, "CORRAL_NO_AUTOSTART": "1", **env}
    paths = [str(ROOT), *filter(None, full_env.get("PYTHONPATH", "").split(os.pathsep))]
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=cwd, env=full_env,
                          input=stdin if stdin is not None else "", capture_output=True, text=True,
                          timeout=180)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single ``Error: ...`` line a failed command prints (and no traceback)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ")
    return lines[-1]


def tiny_gguf(path: Path) -> Path:
    """A minimal valid GGUF (one 4x8 tensor): enough to create, list, show and delete."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def spawn_repl(corral, home: Path, *args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CORRAL_"))}
    env.update(OLLAMA_HOST=corral.url, CORRAL_NO_AUTOSTART="1", HOME=str(home),
               TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1", PYTHONPATH=str(ROOT))
    child = pexpect.spawn(sys.executable, ["-m", "services.cli", "run", *args], cwd=str(ROOT),
                          env=env, encoding="utf-8", dimensions=(40, 200), timeout=60)
    child.logfile_read = sys.stdout  # the whole session shows up in a failure report
    child.expect_exact(PROMPT)
    child.expect_exact(PLACEHOLDER)
    return child


def say(child: pexpect.spawn, line: str, expect: str | None = None) -> None:
    child.sendline(line)
    if expect is not None:
        child.expect_exact(expect)
