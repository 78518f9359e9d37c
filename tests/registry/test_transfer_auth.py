"""Registry auth pieces: challenges, token URLs, credentials files, the ed25519 identity."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from registry.transfer.auth import (
    Challenge, Credentials, OllamaKey, credentials_for, load_credentials, parse_challenge, token_url,
)
from registry.transfer.remote import TransferOptions, resolve_remote
from services.errors import CorralError
from tests.registry.fake_oci import verify_signed


def test_parse_bearer_challenge_keeps_quoted_commas():
    challenge = parse_challenge('Bearer realm="https://r.example/token",service="r.example",'
                                'scope="repository:a/b:pull,push"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://r.example/token", "service": "r.example",
                                "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"') == Challenge("basic", {"realm": "x"})


def test_token_url_is_sorted_and_go_escaped():
    url = token_url(Challenge("bearer", {"realm": "https://r.example/v2/token?x=1",
                                         "service": "svc", "scope": "repository:a/b:pull other"}))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "r.example", "/v2/token")
    keys = [k for k, _ in parse_qsl(parts.query)]
    assert keys == sorted(keys) == ["nonce", "scope", "scope", "service", "ts", "x"]
    assert "scope=repository%3Aa%2Fb%3Apull&scope=other" in parts.query
    with pytest.raises(Exception, match="unsupported auth realm"):
        token_url(Challenge("bearer", {"realm": "basic-realm"}))


def test_credentials_file_formats(tmp_path: Path):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({
        "https://Reg.Example:5000/": {"username": "u", "password": "p"},
        "tok.example": {"token": "abc"},
    }))
    table = load_credentials(path)
    assert credentials_for(table, "reg.example:5000") == Credentials("u", "p")
    assert credentials_for(table, "tok.example").token == "abc"
    assert credentials_for(table, "other") == Credentials()
    docker = tmp_path / "config.json"
    docker.write_text(json.dumps({"auths": {"d.example": {
        "auth": base64.b64encode(b"bob:pw:with:colons").decode()}}}))
    assert credentials_for(load_credentials(docker), "d.example") == Credentials("bob", "pw:with:colons")
    assert Credentials("u", "p").basic == "Basic " + base64.b64encode(b"u:p").decode()
    assert load_credentials(None) == {}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(CorralError, match="registry credentials file"):
        load_credentials(tmp_path / "bad.json")


def test_ollama_key_is_created_once_and_signs(tmp_path: Path):
    key = OllamaKey(tmp_path / "keys" / "id_ed25519")
    url = "https://r.example/token?nonce=n&ts=1"
    header = key.authorization(url)
    assert ":" in header and not header.startswith("Bearer")
    public = verify_signed(header, url)
    again = OllamaKey(tmp_path / "keys" / "id_ed25519")  # the file is read, not replaced
    assert verify_signed(again.authorization(url), url) == public
    with pytest.raises(Exception):
        verify_signed(header, url + "&tampered=1")


def test_resolve_remote_urls():
    ref = resolve_remote("example.com:5000/team/model:v1", insecure=False)
    assert ref.manifest_url() == "https://example.com:5000/v2/team/model/manifests/v1"
    assert ref.blob_url("sha256:ab") == "https://example.com:5000/v2/team/model/blobs/sha256:ab"
    assert ref.uploads_url() == "https://example.com:5000/v2/team/model/blobs/uploads/"
    assert resolve_remote("model", insecure=True).base == "http://registry.ollama.ai"
    assert resolve_remote("https://h/a/b", insecure=False).scope("pull") == "repository:a/b:pull"


def test_part_sizes_follow_ollama():
    options = TransferOptions()
    assert options.part_size(50_000_000) == 100_000_000  # one part under 100 MB
    assert options.part_size(3_200_000_000) == 200_000_000  # total / 16
    assert options.part_size(10**12) == 1_000_000_000
