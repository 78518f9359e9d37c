"""Where a model name lives on the network, and the knobs of every transfer.

A name ``host/namespace/model:tag`` maps to ``<scheme>://host/v2/namespace/model/...``: always
two repository components, as Ollama does. ``insecure`` selects plain http (it does not mean
"skip TLS verification"); a name spelled ``http://...`` without ``insecure`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from registry.transfer.proxy import ProxyConfig
from services.errors import CorralError
from services.names import ModelName, parse_name

MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
USER_AGENT = "corral/0.1 (ollama-compatible)"
MiB = 1 << 20


@dataclass(frozen=True)
class TransferOptions:
    """Sizes, retries and timeouts; the defaults are Ollama's (``server/download.go``)."""

    min_part_size: int = 100_000_000
    max_part_size: int = 1_000_000_000
    max_parts: int = 16
    attempts: int = 6
    backoff_s: float = 1.0  # sleep backoff_s * 2**attempt between attempts
    stall_timeout_s: float = 30.0
    progress_interval_s: float = 0.06
    auth_file: Path | None = None
    key_file: Path | None = None
    proxies: ProxyConfig = ProxyConfig()

    def part_size(self, total: int) -> int:
        """Ollama's part size: total/16 clamped to [min, max] (a small blob is one part)."""
        return max(1, min(self.max_part_size, max(self.min_part_size, total // self.max_parts)))


@dataclass(frozen=True)
class RemoteRef:
    """A model name resolved to its registry URLs."""

    name: ModelName
    scheme: str

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.name.host}"

    @property
    def host(self) -> str:
        """``host[:port]`` as written in the name (the credentials key)."""
        return self.name.host

    @property
    def repository(self) -> str:
        return f"{self.name.namespace}/{self.name.model}"

    def manifest_url(self, reference: str | None = None) -> str:
        return f"{self.base}/v2/{self.repository}/manifests/{reference or self.name.tag}"

    def blob_url(self, digest: str) -> str:
        return f"{self.base}/v2/{self.repository}/blobs/{digest}"

    def uploads_url(self) -> str:
        return f"{self.base}/v2/{self.repository}/blobs/uploads/"

    def scope(self, actions: str) -> str:
        return f"repository:{self.repository}:{actions}"


def resolve_remote(text: str, *, insecure: bool) -> RemoteRef:
    """Resolve ``text``; ``InvalidModelNameError`` for bad names, ``CorralError`` for http
    without ``insecure``."""
    name = parse_name(text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else "https"
    if scheme == "http" and not insecure:
        raise CorralError("insecure protocol http")
    return RemoteRef(name=name, scheme="http" if insecure else "https")
