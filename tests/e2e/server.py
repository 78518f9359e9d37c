"""A real ``corral serve`` process tree for end-to-end tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e import openapi_check

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), children first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found += children
        frontier += children
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def terminate(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class CorralServer:
    """``corral serve`` on a free port with its own OLLAMA_MODELS; logs go to a file.

    ``tls`` (a client context trusting the server's certificate) means the server speaks HTTPS;
    ``headers`` are sent with every request the helpers make (e.g. an API key).
    """

    def __init__(self, models_dir: Path, log_path: Path, *, tls: ssl.SSLContext | None = None,
                 **env: str) -> None:
        self.port = free_port()
        self.tls = tls
        self.headers: dict[str, str] = {}
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.models_dir = models_dir
        self.log_path = log_path
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CORRAL_"))},
                    "OLLAMA_HOST": f"127.0.0.1:{self.port}", "OLLAMA_MODELS": str(models_dir),
                    "CORRAL_NUM_THREADS": "2", "OLLAMA_CONTEXT_LENGTH": "2048", **env}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> CorralServer:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve"], cwd=ROOT, env=self.env,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        openapi_check.watch(self.url)  # every response from here on is checked against the spec
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"corral serve exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if self.get("/api/tags")["models"]:
                    return self
            except (OSError, urllib.error.URLError, http.client.HTTPException, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"corral serve not ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process:
            terminate(self.process, timeout)
        openapi_check.unwatch(self.url)
        self._log.close()
        return self.process.returncode if self.process else 0

    def request(self, method: str, path: str, body: object = None, raw: bytes | None = None,
                timeout: float = 120.0, headers: dict | None = None) -> tuple[int, bytes, dict]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={**self.headers, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.tls) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            with exc:  # closes its connection now, not when the collector gets to it
                return exc.code, exc.read(), dict(exc.headers)

    def get(self, path: str) -> dict:
        status, body, _ = self.request("GET", path)
        if status != 200:
            raise ValueError(status)
        return json.loads(body)

    def post(self, path: str, body: object) -> tuple[int, object]:
        status, raw, _ = self.request("POST", path, body)
        return status, json.loads(raw)

    def stream(self, path: str, body: object, timeout: float = 120.0):
        """POST and yield NDJSON objects as they arrive."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers=self.headers)
        with urllib.request.urlopen(req, timeout=timeout, context=self.tls) as resp:
            for line in resp:
                if line.strip():
                    yield json.loads(line)

    def log_events(self, name: str) -> list[dict]:
        """Every JSON log record of event ``name`` the server tree has written so far."""
        found = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found

    def runner_pids(self) -> list[int]:
        return [p for p in descendants(self.process.pid) if " -m runner" in cmdline(p)]
