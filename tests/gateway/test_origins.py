"""Ollama's origin allow-list and Host rules, as pure functions (the middleware is tested in
test_security.py, the whole thing end to end in tests/e2e/test_security.py)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.origins import (
    HostGuard, OriginPolicy, canonical_header, host_guard_for, is_cross_origin, split_host,
)

BUILTIN = OriginPolicy.from_origins([])


@pytest.mark.parametrize("origin", [
    "http://localhost", "https://localhost", "http://localhost:3000", "https://localhost:8443",
    "http://127.0.0.1", "http://127.0.0.1:8080", "https://0.0.0.0:1", "http://0.0.0.0",
    "app://obsidian.md", "file://", "tauri://localhost", "vscode-webview://abc",
    "vscode-file://vscode-app", "HTTP://LOCALHOST:3000",
])
def test_ollama_builtin_origins_are_allowed(origin: str) -> None:
    assert BUILTIN.allows(origin)


@pytest.mark.parametrize("origin", [
    "http://evil.example", "https://localhost.evil.example", "http://127.0.0.2",
    "chrome-extension://abcdef", "moz-extension://abcdef", "null", "http://[::1]:3000",
    "http://localhostx",
])
def test_other_origins_are_refused_by_default(origin: str) -> None:
    assert not BUILTIN.allows(origin)


def test_ollama_origins_adds_exact_and_wildcard_entries() -> None:
    policy = OriginPolicy.from_origins(["https://app.example.com", "chrome-extension://*",
                                        "https://*.corp.example"])
    assert policy.allows("https://app.example.com")
    assert not policy.allows("https://app.example.com.evil")
    assert policy.allows("chrome-extension://abcdef")
    assert policy.allows("https://wiki.corp.example")
    assert not policy.allows("https://wiki.corp.example.evil")
    assert policy.allows("http://localhost:5173")  # built-ins stay


def test_a_lone_star_allows_every_origin_and_answers_star() -> None:
    policy = OriginPolicy.from_origins(["*"])
    assert policy.allows("http://anything.example")
    assert policy.response_headers("http://anything.example") == {"Access-Control-Allow-Origin": "*"}


def test_invalid_entries_are_skipped_not_fatal() -> None:
    policy = OriginPolicy.from_origins(["example.com", "http://*.a.*", "https://ok.example"])
    assert not policy.allows("example.com") and not policy.allows("http://x.a.b")
    assert policy.allows("https://ok.example")


def test_preflight_headers_are_ollamas() -> None:
    headers = BUILTIN.preflight_headers("http://localhost:3000")
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
    allowed = headers["Access-Control-Allow-Headers"].split(",")
    assert allowed[:6] == ["Authorization", "Content-Type", "User-Agent", "Accept",
                           "X-Requested-With", "Openai-Beta"]
    assert "X-Stainless-Retry-Count" in allowed and len(allowed) == 18
    assert headers["Access-Control-Max-Age"] == "43200"
    assert "Origin" in headers["Vary"]
    assert BUILTIN.response_headers("http://localhost") == {
        "Vary": "Origin", "Access-Control-Allow-Origin": "http://localhost"}


def test_canonical_header_matches_go() -> None:
    assert canonical_header("x-stainless-os") == "X-Stainless-Os"
    assert canonical_header("OpenAI-Beta") == "Openai-Beta"


def test_same_origin_is_not_cross_origin() -> None:
    assert not is_cross_origin("http://localhost:11434", "localhost:11434")
    assert not is_cross_origin("https://rebind.evil:11434", "rebind.evil:11434")
    assert is_cross_origin("http://evil.example", "localhost:11434")
    assert not is_cross_origin("", "localhost:11434")


@pytest.mark.parametrize("header, host", [
    ("localhost:11434", "localhost"), ("[::1]:11434", "::1"), ("[::1]", "::1"),
    ("Example.COM", "example.com"), ("::1", "::1"), ("", ""),
])
def test_split_host(header: str, host: str) -> None:
    assert split_host(header) == host


GUARD = HostGuard(active=True, hostname="mybox",
                  local_addresses=frozenset({ipaddress.ip_address("203.0.113.7")}))


@pytest.mark.parametrize("host", [
    "", "localhost", "mybox", "app.localhost", "printer.local", "svc.internal",
])
def test_local_names_pass(host: str) -> None:
    assert GUARD.allows_ip(host) is None and GUARD.allows_name(host)


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "local", "mybox.evil"])
def test_other_names_are_rebinding(host: str) -> None:
    assert GUARD.allows_ip(host) is None and not GUARD.allows_name(host)


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("0.0.0.0", True), ("::", True),
    ("10.1.2.3", True), ("172.20.0.1", True), ("192.168.1.1", True), ("fd00::1", True),
    ("203.0.113.7", True), ("::ffff:127.0.0.1", True),
    ("8.8.8.8", False), ("172.32.0.1", False), ("169.254.1.1", False), ("2001:db8::1", False),
])
def test_ip_hosts(host: str, allowed: bool) -> None:
    assert GUARD.allows_ip(host) is allowed


async def test_guard_is_active_only_on_a_loopback_bind() -> None:
    assert (await host_guard_for("127.0.0.1")).active
    assert (await host_guard_for("::1")).active
    assert (await host_guard_for("localhost")).active
    assert not (await host_guard_for("0.0.0.0")).active
    assert not (await host_guard_for("192.168.1.10")).active
