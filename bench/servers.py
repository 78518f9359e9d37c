"""The three servers under test as local processes: Corral, llama.cpp's ``llama-server`` and
llama-cpp-python's own FastAPI server. Each one gets the same model file, thread count and
per-slot context; each logs to its own file under the run's scratch directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from services.serve import die_with_parent
from tests.e2e.server import ROOT, CorralServer, cmdline, descendants, free_port, terminate

__all__ = ["Corral", "LlamaCppPythonServer", "LlamaServer", "corral_pids", "vm_hwm"]


def vm_hwm(pid: int) -> int | None:
    """Peak resident set size of ``pid`` in bytes (``VmHWM``), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def corral_pids(server: Corral) -> dict[str, list[int]]:
    """The gateway, registry and runner pids below a running ``corral serve``."""
    found: dict[str, list[int]] = {"gateway": [], "registry": [], "runner": []}
    for pid in descendants(server.process.pid):
        line = cmdline(pid)
        for role in found:
            if f" -m {role}" in line:
                found[role].append(pid)
    return found


class Corral(CorralServer):
    """``corral serve`` on a free port with its own store, killed with the harness if it dies.

    Ready when ``/api/tags`` lists a model (the embedded one), or, with ``empty=True`` (no
    embedded model), as soon as ``/api/version`` answers."""

    def __init__(self, models_dir: Path, log_path: Path, *, empty: bool = False, **env: str):
        if empty:
            env["CORRAL_EMBEDDED_MODEL"] = "0"
        super().__init__(models_dir, log_path, **env)
        self.empty = empty

    def start(self, timeout: float = 120.0) -> Corral:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve"], cwd=ROOT, env=self.env,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"corral serve exited early:\n{self.log_path.read_text()[-2000:]}")
            try:
                if self.empty or self.get("/api/tags")["models"]:
                    self.get("/api/version")
                    return self
            except (OSError, urllib.error.URLError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"corral serve not ready:\n{self.log_path.read_text()[-2000:]}")


class _Process:
    """A server subprocess that is ready once ``ready_path`` answers 200."""

    ready_path = "/health"

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, timeout: float = 120.0) -> _Process:
        """Spawn and wait for readiness; returns self."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self._env(),
                                            preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text()[-2000:]
                raise RuntimeError(f"{self.argv[0]} exited early:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=5) as resp:
                    if resp.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"{self.argv[0]} not ready:\n{self.log_path.read_text()[-2000:]}")

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process:
            terminate(self.process, timeout)

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LlamaServer(_Process):
    """``llama-server -m MODEL -t T -c CTX*parallel -np parallel`` on a free loopback port."""

    def __init__(self, binary: Path, model: Path, log_path: Path, *, threads: int, ctx: int,
                 parallel: int = 1) -> None:
        super().__init__([str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", "{port}",
                          "-t", str(threads), "-tb", str(threads), "-c", str(ctx * parallel),
                          "-np", str(parallel), "--no-webui", "--log-disable"], log_path)


class LlamaCppPythonServer(_Process):
    """``python -m llama_cpp.server`` (llama-cpp-python's FastAPI server) on a free port."""

    ready_path = "/v1/models"

    def __init__(self, model: Path, log_path: Path, *, threads: int, ctx: int) -> None:
        super().__init__([sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                          "--host", "127.0.0.1", "--port", "{port}", "--n_threads", str(threads),
                          "--n_threads_batch", str(threads), "--n_ctx", str(ctx),
                          "--verbose", "False"], log_path)

    def _env(self) -> dict[str, str]:
        # Its settings also read the environment; keep ours from leaking in.
        return {k: v for k, v in os.environ.items() if not k.startswith(("MODEL", "N_"))}
