"""Which proxy a registry request goes through: Go's ``http.ProxyFromEnvironment`` rules, which
Ollama's pulls and pushes follow.

``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http ones (upper case first, then lower);
a proxy written without a scheme is ``http://``. ``localhost`` and loopback addresses are never
proxied, whatever ``NO_PROXY`` says. ``NO_PROXY`` is a comma list: ``*`` (nothing is proxied),
IP addresses, CIDR blocks, and domain names (``example.com`` matches it and its subdomains,
``.example.com`` only the subdomains), each optionally with ``:port``. aiohttp's own
``trust_env`` is not used: it proxies loopback, which a local registry must never be.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from yarl import URL


@dataclass(frozen=True)
class ProxyConfig:
    """The proxy variables (``RegistrySettings`` reads them once from the environment)."""

    http: str = ""
    https: str = ""
    no_proxy: str = ""

    def for_url(self, url: URL) -> str | None:
        """The proxy URL for a request to ``url``, or ``None`` to connect directly."""
        proxy = {"https": self.https, "http": self.http}.get(url.scheme, "")
        if not proxy or not self._use_proxy(url):
            return None
        return proxy if "://" in proxy else f"http://{proxy}"

    def _use_proxy(self, url: URL) -> bool:
        host = (url.host or "").lower().rstrip(".")
        if host == "localhost":
            return False
        address = _ip(host)
        if address is not None and address.is_loopback:
            return False
        port = url.port
        for entry in (e.strip().lower() for e in self.no_proxy.split(",")):
            if not entry:
                continue
            if entry == "*":
                return False
            if _matches(entry, host, address, port):
                return False
        return True


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _matches(entry: str, host: str, address: _Address | None, port: int | None) -> bool:
    if "/" in entry:  # CIDR
        try:
            return address is not None and address in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    entry_host, entry_port = _split_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    entry_ip = _ip(entry_host)
    if entry_ip is not None:
        return address is not None and entry_ip == address
    if entry_host.startswith("."):
        return host.endswith(entry_host)
    if entry_host.startswith("*."):
        return host.endswith(entry_host[1:])
    return host == entry_host or host.endswith("." + entry_host)


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def _ip(text: str) -> _Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
