"""Registry credentials and the three ways of answering a ``401``.

Credentials never come from a request or the command line: ``CORRAL_REGISTRY_AUTH`` names a
JSON file mapping a registry host (``host[:port]``, an optional ``https://`` prefix is ignored)
to ``{"username": ..., "password": ...}`` or ``{"token": ...}``. Docker's ``config.json``
shape (``{"auths": {host: {"auth": base64("user:pass")}}}``) is read too, so an existing
``~/.docker/config.json`` works unchanged.

Answers to a challenge (``WWW-Authenticate``):

* ``Basic`` — the host's username/password.
* ``Bearer realm=…,service=…,scope=…`` — fetch a token from the realm: with Basic
  credentials when the host has some (the Docker token flow), otherwise signed with Ollama's
  ed25519 key (``server/auth.go``): ``Authorization: <ssh pubkey b64>:<sig b64>`` over
  ``GET,<token URL>,<b64 of sha256("")>``. Like Ollama since #13738, the key signs only for a
  realm on the registry's own host:port; other realms are asked anonymously.
* A configured static ``token`` is sent as ``Bearer`` from the first request on.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.errors import CorralError, InvalidRequestError

# base64 of the hex sha256 of an empty body: Ollama signs every token request with it
EMPTY_BODY_HASH_B64 = base64.b64encode(
    b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").decode()
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')

log = structlog.get_logger()


@dataclass(frozen=True)
class Credentials:
    """What the configuration holds for one registry host."""

    username: str = ""
    password: str = ""
    token: str = ""

    @property
    def basic(self) -> str | None:
        """The ``Authorization`` value for Basic auth, when a username is configured."""
        if not self.username:
            return None
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _host_key(host: str) -> str:
    host = host.strip().lower()
    if "://" in host:
        host = urlsplit(host).netloc
    return host.split("/", 1)[0]


def load_credentials(path: Path | None) -> dict[str, Credentials]:
    """Read the credentials file; an absent setting means no credentials at all.

    Raises ``CorralError`` for an unreadable or malformed file (a configuration error
    the user must see, not silently anonymous access).
    """
    if path is None:
        return {}
    try:
        raw = json.loads(path.expanduser().read_text())
    except (OSError, ValueError) as exc:
        raise CorralError(f"registry credentials file {str(path)!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CorralError(f"registry credentials file {str(path)!r}: not a JSON object")
    auths = raw.get("auths")
    entries: dict[str, Any] = auths if isinstance(auths, dict) else raw
    return {_host_key(host): _credentials(entry) for host, entry in entries.items()
            if isinstance(entry, dict)}


def _credentials(entry: dict[str, Any]) -> Credentials:
    if entry.get("auth"):  # Docker's config.json: base64("user:pass")
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return Credentials(username=user, password=password)
    return Credentials(username=str(entry.get("username") or ""),
                       password=str(entry.get("password") or ""),
                       token=str(entry.get("token") or entry.get("identitytoken") or ""))


def credentials_for(table: dict[str, Credentials], host: str) -> Credentials:
    return table.get(_host_key(host), Credentials())


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="…",service="…",scope="a b"`` → scheme and parameters (quotes honoured,
    so a scope such as ``repository:a/b:pull,push`` stays whole)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme=scheme.lower(), params=params)


def token_url(challenge: Challenge) -> str:
    """The realm URL plus ``service``, one ``scope`` per space-separated scope, ``ts`` and
    ``nonce``; keys sorted and escaped as Go's ``url.Values.Encode``."""
    parts = urlsplit(challenge.realm)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(f"unsupported auth realm {challenge.realm!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if "service" in challenge.params:
        query.append(("service", challenge.params["service"]))
    query += [("scope", s) for s in challenge.params.get("scope", "").split() if s]
    query += [("ts", str(int(time.time()))),
              ("nonce", base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="))]
    encoded = urlencode(sorted(query, key=lambda kv: kv[0]), quote_via=quote_plus)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, encoded, ""))


class OllamaKey:
    """The ed25519 identity Ollama signs token requests with (OpenSSH key files).

    The key file is created on first use (with its ``.pub`` beside it), as Ollama's CLI does.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: Ed25519PrivateKey | None = None

    def _load(self) -> Ed25519PrivateKey:
        """Blocking: read the key, creating it (0600) when absent."""
        if self._key is None:
            if self.path.exists():
                key = serialization.load_ssh_private_key(self.path.read_bytes(), password=None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise InvalidRequestError(f"{self.path} is not an ed25519 key")
            else:
                key = self._create()
            self._key = key
        return self._key

    def _create(self) -> Ed25519PrivateKey:
        key = Ed25519PrivateKey.generate()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        with open(self.path, "xb") as f:
            self.path.chmod(0o600)
            f.write(private)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
        self.path.with_name(self.path.name + ".pub").write_bytes(public + b"\n")
        log.info("registry_key_created", path=str(self.path))
        return key

    def public_b64(self) -> str:
        """The second field of the ``.pub`` line: base64 of the SSH wire-format key. Blocking."""
        public = self._load().public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                        serialization.PublicFormat.OpenSSH)
        return public.split()[1].decode()

    def authorization(self, url: str) -> str:
        """``<pub>:<sig>`` for ``GET url`` (no scheme word, as Ollama sends it). Blocking."""
        message = f"GET,{url},{EMPTY_BODY_HASH_B64}".encode()
        signature = base64.b64encode(self._load().sign(message)).decode()
        return f"{self.public_b64()}:{signature}"

