"""Proxy choice per request, as Go's ``http.ProxyFromEnvironment`` makes it for Ollama."""

from __future__ import annotations

import pytest
from yarl import URL

from registry.transfer.proxy import ProxyConfig
from services.settings import RegistrySettings

PROXIES = ProxyConfig(http="proxy.lan:3128", https="http://secure.lan:8080",
                      no_proxy="internal.example, .corp.example,10.0.0.0/8,192.0.2.7:5000,[::5]")


@pytest.mark.parametrize(("url", "proxy"), [
    ("https://registry.ollama.ai/v2/", "http://secure.lan:8080"),
    ("http://192.0.2.2:5000/v2/", "http://proxy.lan:3128"),  # no scheme: http://
    ("http://localhost:5000/v2/", None),  # loopback is never proxied
    ("http://127.0.0.1:5000/v2/", None),
    ("http://[::1]:5000/v2/", None),
    ("https://internal.example/v2/", None),  # a domain and its subdomains
    ("https://a.internal.example/v2/", None),
    ("https://corp.example/v2/", "http://secure.lan:8080"),  # a leading dot: subdomains only
    ("https://x.corp.example/v2/", None),
    ("http://10.1.2.3/v2/", None),  # CIDR
    ("http://192.0.2.7:5000/v2/", None),  # host:port
    ("http://192.0.2.7:5001/v2/", "http://proxy.lan:3128"),
    ("http://[::5]:80/v2/", None),
])
def test_proxy_for_url(url: str, proxy: str | None) -> None:
    assert PROXIES.for_url(URL(url)) == proxy


def test_star_and_unset() -> None:
    assert ProxyConfig(https="p:1", no_proxy="*").for_url(URL("https://x/")) is None
    assert ProxyConfig().for_url(URL("https://x/")) is None


def test_settings_read_upper_then_lower_case() -> None:
    settings = RegistrySettings.from_env({"https_proxy": "low:1", "HTTPS_PROXY": "up:1",
                                          "http_proxy": "h:2", "no_proxy": "a,b"})
    assert (settings.https_proxy, settings.http_proxy, settings.no_proxy) == ("up:1", "h:2", "a,b")
