"""Build a model store byte for byte as Ollama writes one, for the interop tests.

Blobs are ``blobs/sha256-<hex>`` (0644); manifests are ``manifests/<host>/<ns>/<model>/<tag>``
(0644, directories 0755). A pulled manifest is kept as the registry sent it (compact, no
newline); one made by ``ollama create`` or ``ollama cp`` is Go's ``json.Encoder`` output (trailing
newline, layers carrying ``from``). Configs are ``ConfigV2`` as Go encodes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_TYPE = "application/vnd.ollama.image.model"
TEMPLATE_TYPE = "application/vnd.ollama.image.template"
PARAMS_TYPE = "application/vnd.ollama.image.params"
SYSTEM_TYPE = "application/vnd.ollama.image.system"
LICENSE_TYPE = "application/vnd.ollama.image.license"

CHATML_TEMPLATE = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
                   "{{ end }}<|im_start|>assistant\n")


def go_encode(value: object) -> bytes:
    """Go's ``json.Encoder``: compact, ``<>&`` escaped, trailing newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return (text + "\n").encode()


def config_v2(family: str, size: str, quant: str, *, rootfs: list[str] | None = None) -> bytes:
    config: dict = {"model_format": "gguf", "model_family": family, "model_families": [family],
                    "model_type": size, "file_type": quant, "architecture": "amd64",
                    "os": "linux"}
    if rootfs is not None:  # configs pulled from registry.ollama.ai carry one
        config["rootfs"] = {"type": "layers", "diff_ids": rootfs}
    return go_encode(config)


@dataclass
class OllamaStore:
    """An Ollama ``OLLAMA_MODELS`` directory under construction."""

    root: Path

    def __post_init__(self) -> None:
        for sub in ("blobs", "manifests"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o755)

    def blob(self, data: bytes, media_type: str, **extra: str) -> dict:
        """Store ``data`` as a blob; return its layer descriptor (Go field order)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        path.write_bytes(data)
        path.chmod(0o644)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / digest.replace(":", "-")

    def manifest(self, host: str, namespace: str, model: str, tag: str, config: dict,
                 layers: list[dict], *, pulled: bool) -> Path:
        body = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": config,
                "layers": layers}
        content = (json.dumps(body, separators=(",", ":")).encode() if pulled
                   else go_encode(body))
        path = self.root / "manifests" / host / namespace / model / tag
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(content)
        path.chmod(0o644)
        return path

    def age(self, seconds: float) -> None:
        """Backdate every file (blobs past the prune grace period)."""
        when = time.time() - seconds
        for path in self.files():
            os.utime(path, (when, when))

    def files(self) -> list[Path]:
        """Ollama's files: everything under ``blobs/`` and ``manifests/``."""
        return sorted(p for sub in ("blobs", "manifests") for p in (self.root / sub).rglob("*")
                      if p.is_file())

    def same_as(self, before: dict[str, tuple[str, int, int]]) -> dict[str, tuple[str, int, int]]:
        """A new snapshot of exactly the files in ``before`` (raises if one is gone)."""
        return self.snapshot([self.root / rel for rel in before])

    def snapshot(self, paths: list[Path] | None = None) -> dict[str, tuple[str, int, int]]:
        """Every given file (default: all) → (sha256, mode, mtime_ns): what must not change."""
        found = {}
        for path in paths if paths is not None else self.files():
            stat = path.stat()
            found[str(path.relative_to(self.root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mode, stat.st_mtime_ns)
        return found


def build_library(root: Path, gguf: Path, *, small_gguf: bytes | None = None) -> OllamaStore:
    """The store the interop tests share: three models Corral never saw.

    - ``smol:latest`` (registry.ollama.ai/library), pulled: ``gguf`` plus template, params,
      license; its config carries ``rootfs``;
    - ``my.registry.example:5000/team/coder:v1``, made by ``ollama create`` FROM smol: the same
      weights blob (shared), a system prompt; newline-terminated, ``from`` on reused layers;
    - ``tiny:latest`` with ``small_gguf`` as weights, when given.
    """
    store = OllamaStore(root)
    weights = store.blob(gguf.read_bytes(), MODEL_TYPE)
    template = store.blob(CHATML_TEMPLATE.encode(), TEMPLATE_TYPE)
    params = store.blob(go_encode({"stop": ["<|im_start|>", "<|im_end|>"]}), PARAMS_TYPE)
    license_ = store.blob(b"Apache License 2.0\n", LICENSE_TYPE)
    config = store.blob(config_v2("llama", "134.52M", "Q4_1", rootfs=[weights["digest"]]),
                        CONFIG_TYPE)
    store.manifest("registry.ollama.ai", "library", "smol", "latest", config,
                   [weights, template, license_, params], pulled=True)
    system = store.blob(b"You are a terse coding assistant.", SYSTEM_TYPE)
    coder_config = store.blob(config_v2("llama", "134.52M", "Q4_1"), CONFIG_TYPE)
    origin = "registry.ollama.ai/library/smol:latest"
    store.manifest("my.registry.example:5000", "team", "coder", "v1", coder_config,
                   [{**weights, "from": origin}, {**template, "from": origin},
                    {**params, "from": origin}, system], pulled=False)
    if small_gguf is not None:
        tiny = store.blob(small_gguf, MODEL_TYPE)
        tiny_config = store.blob(config_v2("llama", "0", "F32"), CONFIG_TYPE)
        store.manifest("registry.ollama.ai", "library", "tiny", "latest", tiny_config, [tiny],
                       pulled=False)
    return store
