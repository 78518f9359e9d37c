"""Ollama's browser guard: the CORS origin allow-list and, on a loopback bind, the Host check.

The rules are Ollama's (``envconfig.AllowedOrigins``, gin-contrib/cors as Ollama configures it,
``allowedHostsMiddleware``):

* Allowed origins are ``OLLAMA_ORIGINS`` (a comma list; ``*`` alone allows every origin, one
  ``*`` inside an entry is a wildcard) plus ``http(s)://localhost``, ``127.0.0.1`` and
  ``0.0.0.0``, each also with any port, and ``app://``, ``file://``, ``tauri://``,
  ``vscode-webview://``, ``vscode-file://``. Browser-extension origins
  (``chrome-extension://…``, ``moz-extension://…``) are accepted in ``OLLAMA_ORIGINS``, where
  Ollama's FAQ tells users to put them; like Ollama, none is allowed by default.
* An ``Origin`` equal to ``http(s)://<Host>`` is not cross-origin and passes untouched.
* A request with any other ``Origin`` not on the list is refused with 403 before anything runs:
  a missing ``Access-Control-Allow-Origin`` alone would not stop a "simple" cross-site POST from
  executing. A preflight ``OPTIONS`` from an allowed origin gets 204 and Ollama's headers.
* While the listener is a loopback address, the ``Host`` must be a loopback, private,
  unspecified or local-interface IP, ``localhost``, this machine's hostname, or a name under
  ``.localhost``, ``.local`` or ``.internal``; anything else is DNS rebinding and gets 403.

Where Ollama answers its 403s with an empty body, Corral says why in Ollama's ``{"error": …}``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger()

BUILTIN_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")
BUILTIN_SCHEMES = ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")
# gin-contrib/cors accepts a listed origin only with one of these schemes (or with a '*')
VALID_SCHEMES = ("http://", "https://", "chrome-extension://", "safari-extension://",
                 "moz-extension://", "ms-browser-extension://")
ALLOW_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
ALLOW_HEADERS = (
    "Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With",
    # OpenAI SDK headers
    "OpenAI-Beta", "x-stainless-arch", "x-stainless-async", "x-stainless-custom-poll-interval",
    "x-stainless-helper-method", "x-stainless-lang", "x-stainless-os",
    "x-stainless-package-version", "x-stainless-poll-helper", "x-stainless-retry-count",
    "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout",
)
MAX_AGE_S = 12 * 3600
LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))  # Go's netip.Addr.IsPrivate


def canonical_header(name: str) -> str:
    """Go's ``http.CanonicalHeaderKey`` of a lower-cased name (``openai-beta`` → ``Openai-Beta``)."""
    return "-".join(part[:1].upper() + part[1:] for part in name.lower().split("-"))


def default_origins(extra: Iterable[str]) -> list[str]:
    """``OLLAMA_ORIGINS`` entries followed by Ollama's built-in origins."""
    origins = [o.strip() for o in extra if o.strip()]
    for host in BUILTIN_HOSTS:
        origins += [f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"]
    return origins + list(BUILTIN_SCHEMES)


@dataclass(frozen=True)
class OriginPolicy:
    """Which ``Origin`` values may use the API from a browser, and the headers they get."""

    exact: frozenset[str] = frozenset()
    wildcards: tuple[tuple[str, str], ...] = ()
    allow_all: bool = False
    preflight: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_origins(cls, extra: Iterable[str]) -> OriginPolicy:
        """The policy for ``OLLAMA_ORIGINS`` entries ``extra`` (invalid ones are skipped with a
        warning, where Ollama refuses to start)."""
        exact, wildcards, allow_all = set(), [], False
        for origin in default_origins(extra):
            origin = origin.lower()
            if origin == "*":
                allow_all = True
            elif origin.count("*") > 1:
                log.warning("origin_ignored", origin=origin, reason="only one * is allowed")
            elif "*" in origin:
                prefix, _, suffix = origin.partition("*")
                wildcards.append((prefix, suffix))
            elif origin.startswith(VALID_SCHEMES):
                exact.add(origin)
            else:
                log.warning("origin_ignored", origin=origin,
                            reason="an origin needs a '*' or one of " + ",".join(VALID_SCHEMES))
        return cls(frozenset(exact), tuple(wildcards), allow_all, _preflight_headers(allow_all))

    def allows(self, origin: str) -> bool:
        origin = origin.lower()
        if self.allow_all or origin in self.exact:
            return True
        return any(origin.startswith(prefix) and origin.endswith(suffix)
                   for prefix, suffix in self.wildcards)

    def preflight_headers(self, origin: str) -> dict[str, str]:
        return {**self.preflight, **self._allow_origin(origin)}

    def response_headers(self, origin: str) -> dict[str, str]:
        if self.allow_all:
            return {"Access-Control-Allow-Origin": "*"}
        return {"Vary": "Origin", **self._allow_origin(origin)}

    def _allow_origin(self, origin: str) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": "*" if self.allow_all else origin}


def _preflight_headers(allow_all: bool) -> dict[str, str]:
    headers = {"Access-Control-Allow-Methods": ALLOW_METHODS,
               "Access-Control-Allow-Headers": ",".join(canonical_header(h) for h in ALLOW_HEADERS),
               "Access-Control-Max-Age": str(MAX_AGE_S)}
    if not allow_all:
        headers["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    return headers


def is_cross_origin(origin: str, host: str) -> bool:
    """Whether ``Origin`` names another site than the ``Host`` the request was sent to."""
    return bool(origin) and origin not in (f"http://{host}", f"https://{host}")


def split_host(host_header: str) -> str:
    """The host part of a ``Host`` header: no port, no IPv6 brackets, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


@dataclass(frozen=True)
class HostGuard:
    """Ollama's ``allowedHost`` for a loopback listener; ``active`` is False otherwise."""

    active: bool
    hostname: str = ""
    local_addresses: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = frozenset()

    def allows_ip(self, host: str) -> bool | None:
        """True/False for an IP literal host; None when ``host`` is a name."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return (address.is_loopback or address.is_unspecified
                or any(address in net for net in _PRIVATE)
                or address in self.local_addresses)

    def allows_name(self, host: str) -> bool:
        return (host in ("", "localhost") or host == self.hostname
                or host.endswith(LOCAL_SUFFIXES))


async def host_guard_for(bind_host: str) -> HostGuard:
    """The guard for a listener on ``bind_host`` (a name is resolved once, at startup)."""
    if not await _is_loopback_bind(bind_host):
        return HostGuard(active=False)
    addresses = await asyncio.to_thread(local_addresses)  # /proc reads and a name lookup
    return HostGuard(active=True, hostname=socket.gethostname().lower(),
                     local_addresses=frozenset(addresses))


async def _is_loopback_bind(bind_host: str) -> bool:
    if bind_host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind_host).is_loopback
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(bind_host, None)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return bool(addresses) and all(a.is_loopback for a in addresses)


def local_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of this machine's interfaces (Linux /proc; the hostname's otherwise)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        found |= {ipaddress.ip_address(prev.split()[-1]) for prev, line in zip(lines, lines[1:])
                  if "/32 host LOCAL" in line}
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            found.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found |= {ipaddress.ip_address(i[4][0]) for i in socket.getaddrinfo(socket.gethostname(), None)}
        except (OSError, ValueError):
            pass
    return found
