"""Open WebUI as a real process against a real Corral, and what Corral saw of it.

Open WebUI lives in its own virtual environment (≈3 GB, built by ``scripts/test-webui.sh``); it
is started offline, without authentication, with its data in a temporary directory, pointed at one
``corral serve`` for chat and for document embeddings.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.server import free_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = Path("/var/cache/corral-webui-venv")
EMBEDDING_MODEL = "smollm2:135m"
ENDPOINT_REPORT = pytest.StashKey[str]()  # the e2e module leaves its table here for the log

# Debian's Chromium, as root, on a machine with no route out: no sandbox, no GPU, and none of
# the background fetches that would otherwise fail by the dozen at every start.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]


def webui_venv() -> Path:
    return Path(os.environ.get("CORRAL_WEBUI_VENV") or DEFAULT_VENV)


def artifacts_dir() -> Path:
    """Where screenshots and logs go: ``$CORRAL_ARTIFACTS`` or ``tests/stack/artifacts``."""
    path = Path(os.environ.get("CORRAL_ARTIFACTS") or ROOT / "tests" / "stack" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def webui_environment(data_dir: Path, ollama_url: str, port: int) -> dict[str, str]:
    """Open WebUI's settings for an offline, single-user run against ``ollama_url``."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")}
    return {
        **keep,
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "WEBUI_SECRET_KEY": "corral-test-secret-key-0123456789abcdef",
        "WEBUI_AUTH": "false",
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "ANONYMIZED_TELEMETRY": "false",
        "DO_NOT_TRACK": "true",
        "SCARF_NO_ANALYTICS": "true",
        "ENABLE_OLLAMA_API": "true",
        "OLLAMA_BASE_URL": ollama_url,
        "ENABLE_OPENAI_API": "false",
        "RAG_EMBEDDING_ENGINE": "ollama",
        "RAG_EMBEDDING_MODEL": EMBEDDING_MODEL,
        "RAG_OLLAMA_BASE_URL": ollama_url,
        # Open WebUI 0.12 sends its built-in tools with every chat ("native" function calling);
        # Corral, like Ollama, answers 400 "... does not support tools" for a model whose
        # template has no tools, as the bundled smollm2:135m's has not. Documents then reach the
        # model through Open WebUI's classic retrieval (an /api/embed of the question).
        "DEFAULT_MODEL_METADATA": json.dumps({"capabilities": {"builtin_tools": False}}),
        # Each of these is one more unbounded generation per chat message on a 2-core machine.
        "ENABLE_TITLE_GENERATION": "false",
        "ENABLE_FOLLOW_UP_GENERATION": "false",
        "ENABLE_TAGS_GENERATION": "false",
        "ENABLE_RETRIEVAL_QUERY_GENERATION": "false",
        "ENABLE_AUTOCOMPLETE_GENERATION": "false",
    }


class OpenWebUI:
    """``open-webui serve`` on a free loopback port; output to a log file."""

    def __init__(self, venv: Path, data_dir: Path, log_path: Path, ollama_url: str) -> None:
        self.executable = venv / "bin" / "open-webui"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = webui_environment(data_dir, ollama_url, self.port)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 420.0) -> OpenWebUI:
        """Start and wait until ``/health`` answers (first start runs its migrations: ~30 s)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.executable), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.data_dir, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"open-webui exited early:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as resp:
                    if resp.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(1.0)
        raise TimeoutError(f"open-webui not ready after {timeout:.0f}s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the whole process group (uvicorn workers included), SIGKILL if it lingers."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process:
            self._log.close()

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass(frozen=True)
class Hit:
    """One request Corral's gateway finished (its ``request_finished`` log line)."""

    method: str
    path: str
    status: int
    request_id: str = field(default="", compare=False)


def corral_hits(log_path: Path) -> list[Hit]:
    """Every request the gateway logged, in order."""
    hits = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"request_finished"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "request_finished":
            hits.append(Hit(record["method"], record["path"], int(record["status"]),
                            record.get("request_id", "")))
    return hits


_DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")


def hits_report(hits: list[Hit]) -> str:
    """A table of method, path (digests folded), status and count, sorted by path."""
    counts = Counter(Hit(h.method, _DIGEST.sub("sha256:<digest>", h.path), h.status) for h in hits)
    lines = [f"{count:5d}  {hit.method:7s} {hit.status}  {hit.path}"
             for hit, count in sorted(counts.items(), key=lambda kv: (kv[0].path, kv[0].method))]
    return "\n".join(["count  method  status  path", *lines])
