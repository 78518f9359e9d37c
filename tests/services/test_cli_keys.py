"""``corral keys``: argument checks, the StringSlice flag, and what the admin API is sent.
The end-to-end behaviour against a real server is tests/e2e/test_security.py."""

from __future__ import annotations

import pytest

from services.api_client import ApiClient
from services.apikeys import hash_secret, new_secret, parse_expiry
from services.cli import COMMANDS, main
from services.cli.keys import cmd_keys
from services.cli.parser import parse_flags, resolve
from services.settings import HostAddress

KEYS = next(c for c in COMMANDS if c.name == "keys")


def test_scope_flag_accumulates_repeated_and_comma_separated_values() -> None:
    inv = parse_flags(KEYS, ["create", "ci", "--scope", "read,inference", "--scope=manage"])
    assert inv.flags["scope"] == ["read", "inference", "manage"]
    assert parse_flags(KEYS, ["list"]).flags["scope"] == []


class Recorder(ApiClient):
    def __init__(self) -> None:
        super().__init__(HostAddress("http", "127.0.0.1", 1))
        self.calls: list[tuple[str, str, object]] = []

    def request(self, method, path, body=None):
        self.calls.append((method, path, body))
        if method == "POST":
            return {"name": body["name"], "scopes": body["scopes"], "key": "corral_secret"}
        if method == "GET":
            return {"keys": [{"name": "ci", "scopes": ["read"], "created_at": "2026-01-01T00:00:00Z",
                              "requests_per_minute": 60, "max_concurrent": 2}]}
        return None


def run(argv: list[str], capsys) -> tuple[Recorder, str, str]:
    recorder = Recorder()
    cmd_keys(resolve(COMMANDS, ["keys", *argv], ""), lambda: recorder)
    out, err = capsys.readouterr()
    return recorder, out, err


def test_create_sends_the_admin_api_body_and_prints_only_the_secret(capsys, monkeypatch) -> None:
    monkeypatch.delenv("CORRAL_REGISTRY_ADDR", raising=False)
    recorder, out, err = run(["create", "ci", "--scope", "inference,read", "--expires", "90d",
                              "--rpm", "60", "--concurrency", "2"], capsys)
    assert recorder.calls == [("POST", "/api/keys", {
        "name": "ci", "scopes": ["read", "inference"], "requests_per_minute": 60,
        "max_concurrent": 2, "expires": "90d"})]
    assert out == "corral_secret\n"
    assert "not shown again" in err


def test_list_and_revoke(capsys, monkeypatch) -> None:
    monkeypatch.delenv("CORRAL_REGISTRY_ADDR", raising=False)
    _, out, _ = run(["list"], capsys)
    assert out.splitlines()[0].split() == ["NAME", "SCOPES", "CREATED", "LAST", "USED", "EXPIRES", "LIMITS"]
    assert "ci" in out and "60/min, 2 at once" in out and "Never" in out
    recorder, _, err = run(["revoke", "ci"], capsys)
    assert recorder.calls == [("DELETE", "/api/keys/ci", None)]
    assert "Revoked" in err


@pytest.mark.parametrize("argv, message", [
    (["rotate"], 'unknown keys action "rotate"'),
    (["create"], "keys create accepts 1 arg(s)"),
    (["create", "ci"], "keys create needs --scope"),
    (["create", "ci", "--scope", "root"], "unknown scope 'root'"),
    (["create", "bad name", "--scope", "read"], "invalid key name"),
    (["create", "ci", "--scope", "read", "--expires", "soon"], "invalid expiry"),
    (["list", "x"], "keys list accepts no args"),
])
def test_bad_command_lines(argv, message, capsys, monkeypatch) -> None:
    monkeypatch.delenv("CORRAL_REGISTRY_ADDR", raising=False)
    monkeypatch.setenv("CORRAL_NO_AUTOSTART", "1")
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    assert main(["keys", *argv]) == 1
    assert message in capsys.readouterr().err


def test_secrets_are_random_and_hashes_are_sha256() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("corral_") and len(a) == len("corral_") + 43
    assert len(hash_secret(a)) == 64 and hash_secret(a) == hash_secret(a) != hash_secret(b)


def test_expiry_forms() -> None:
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_expiry("90d", now) == now + dt.timedelta(days=90)
    assert parse_expiry("1h30m", now) == now + dt.timedelta(minutes=90)
    assert parse_expiry("2026-02-01T00:00:00Z", now) == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert parse_expiry("", now) is None
    with pytest.raises(Exception, match="not in the future"):
        parse_expiry("2025-01-01T00:00:00Z", now)


def test_api_client_sends_the_key_as_bearer() -> None:
    client = ApiClient(HostAddress("http", "127.0.0.1", 9), api_key="corral_k")
    sent = {}

    class Conn:
        def request(self, method, path, body=None, headers=None):
            sent.update(headers)

        def getresponse(self):
            raise OSError("stop here")

        def close(self):
            pass

    client._connection = lambda timeout=None: Conn()
    with pytest.raises(Exception):
        client.request("GET", "/api/tags")
    assert sent["Authorization"] == "Bearer corral_k"
