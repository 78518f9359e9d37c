"""A fleet on one machine: PostgreSQL, one registry, N gateways that share no disk with it,
and Debian's nginx balancing them. Every piece is a real process started here."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e import openapi_check
from tests.e2e.server import ROOT, free_port, terminate

NGINX = "/usr/sbin/nginx"


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CORRAL_"))}
    return {**env, **extra}


class Process:
    """A ``python -m <module>`` child with its log in a file (JSON lines from structlog)."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module, self.env, self.log_path = module, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Process:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", self.module], cwd=ROOT,
                                        env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, 20)
            self._log.close()

    def events(self, name: str) -> list[dict]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


class Gateway(Process):
    """``python -m gateway`` with its own empty cache dir and a models dir the registry never
    uses: all it knows of the store is what the registry sends over gRPC."""

    def __init__(self, name: str, root: Path, registry_address: str) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache_dir = root / f"gateway-{name}" / "cache"
        models = root / f"gateway-{name}" / "models"
        models.mkdir(parents=True)
        env = base_env(OLLAMA_HOST=f"127.0.0.1:{self.port}", OLLAMA_MODELS=str(models),
                       CORRAL_CACHE_DIR=str(self.cache_dir), CORRAL_REGISTRY_ADDR=registry_address,
                       CORRAL_NUM_THREADS="1", OLLAMA_CONTEXT_LENGTH="1024",
                       CORRAL_RUNTIME_DIR=str(root / f"gateway-{name}" / "run"))
        super().__init__("gateway", env, root / f"gateway-{name}.log")

    def start(self) -> Gateway:
        openapi_check.watch(self.url)  # its responses are checked against the spec too
        return super().start()

    def stop(self) -> None:
        super().stop()
        openapi_check.unwatch(self.url)

    def wait_ready(self, timeout: float = 120.0) -> Gateway:
        wait_http(f"{self.url}/api/version", timeout, self)
        return self


class Nginx:
    """Debian's nginx in the foreground, round robin over the gateways (config in a temp dir).

    ``X-Upstream`` tells the client which gateway answered; ``proxy_next_upstream error``
    moves a request whose gateway refuses connections to the next one (the request was never
    sent, so even POSTs move), and ``max_fails=1`` takes that gateway out for a while."""

    def __init__(self, root: Path, upstreams: list[int]) -> None:
        if not Path(NGINX).exists():
            if os.environ.get("CI"):
                pytest.fail("nginx is missing: scripts/test.sh installs Debian's nginx")
            pytest.skip("nginx is not installed (apt-get install nginx)")
        self.root, self.port = root / "nginx", free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root.mkdir()
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=60s;"
                            for p in upstreams)
        user = "user root;" if os.geteuid() == 0 else ""
        d = self.root
        (d / "nginx.conf").write_text(f"""{user}
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format upstream '$request $status $upstream_addr';
    access_log {d}/access.log upstream;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream corral {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://corral;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;  # loopback-bound gateways refuse foreign Hosts
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
            client_max_body_size 0;
            proxy_next_upstream error timeout;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
""")
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        with open(self.root / "stderr.log", "ab") as stderr:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [NGINX, "-p", str(self.root), "-c", str(self.root / "nginx.conf")],
                stdout=subprocess.DEVNULL, stderr=stderr)
        openapi_check.watch(self.url)  # what the gateways answer through it, checked
        wait_http(f"{self.url}/api/version", 30, None)
        return self

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, 10)
        openapi_check.unwatch(self.url)


def wait_http(url: str, timeout: float, owner: Process | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if owner is not None and owner.process.poll() is not None:
            raise RuntimeError(f"{owner.module} exited early:\n{owner.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready" + (f":\n{owner.tail()}" if owner else ""))


def call(url: str, method: str, body: object = None,
         timeout: float = 180.0) -> tuple[int, dict, dict]:
    """One JSON request: ``(status, body, headers)``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    return status, (json.loads(raw) if raw.strip() else {}), headers


def start_registry(root: Path, database_url: str) -> tuple[Process, str]:
    address = f"127.0.0.1:{free_port()}"
    env = base_env(OLLAMA_MODELS=str(root / "registry-store"), CORRAL_REGISTRY_ADDR=address,
                   CORRAL_DATABASE_URL=database_url)
    return Process("registry", env, root / "registry.log").start(), address

