"""API keys: the secret's shape, its hash, the scope names and the limits a key carries.

Shared by the gateway (which hashes what a client presents), the CLI (which can create a key
straight through the registry) and the registry (which stores hashes only).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from services.errors import InvalidRequestError
from services.settings import parse_go_duration

KEY_PREFIX = "corral_"
KEY_BYTES = 32

READ = "read"
INFERENCE = "inference"
MANAGE = "manage"
REGISTRY_PULL = "registry:pull"
REGISTRY_PUSH = "registry:push"
METRICS = "metrics"
ADMIN = "admin"
SCOPES = (READ, INFERENCE, MANAGE, REGISTRY_PULL, REGISTRY_PUSH, METRICS, ADMIN)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HASH = re.compile(r"[0-9a-f]{64}")
_DAYS = re.compile(r"(\d+)d")


def new_secret() -> str:
    """A fresh key: ``corral_`` and 256 random bits, URL-safe (the prefix lets secret scanners
    and people recognise a leaked key)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_secret(secret: str) -> str:
    """Lower-case hex SHA-256 of ``secret``: what the registry stores and looks keys up by.

    A fast unsalted hash is the right tool here, unlike for passwords: every key carries 256
    random bits, so no offline guessing can invert the hash, while a deliberately slow hash
    (bcrypt, argon2) would only add its cost to every request. Being deterministic, the hash is
    also the lookup key itself (an index), so a check never scans or compares secrets.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def is_key_hash(value: str) -> bool:
    return bool(_HASH.fullmatch(value))


def check_name(name: str) -> str:
    """A valid key name, or ``InvalidRequestError``."""
    if not _NAME.fullmatch(name or ""):
        raise InvalidRequestError(
            f"invalid key name {name!r}: use a letter or digit, then up to 63 letters, digits, "
            "'.', '_' or '-'")
    return name


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The scopes, de-duplicated in canonical order; ``InvalidRequestError`` for an unknown one
    or for none at all."""
    wanted = [s.strip().lower() for s in scopes if s.strip()]
    if not wanted:
        raise InvalidRequestError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    unknown = sorted(set(wanted) - set(SCOPES))
    if unknown:
        raise InvalidRequestError(
            f"unknown scope {unknown[0]!r}: choose from {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


def grants(scopes: tuple[str, ...] | list[str], needed: frozenset[str]) -> bool:
    """Whether a key holding ``scopes`` may do something that needs any one of ``needed``."""
    return ADMIN in scopes or not needed.isdisjoint(scopes)


def parse_expiry(text: str, now: datetime | None = None) -> datetime | None:
    """When a key made now with ``--expires text`` expires: a duration (``90d``, ``12h``,
    ``1h30m``) or an RFC 3339 time; empty means never."""
    text = (text or "").strip()
    if not text:
        return None
    now = now or datetime.now(UTC)
    if match := _DAYS.fullmatch(text):
        return now + timedelta(days=int(match.group(1)))
    try:
        seconds = parse_go_duration(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequestError(
                f"invalid expiry {text!r}: use a duration such as 90d or 12h, or an RFC 3339 "
                "time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - now).total_seconds()
    if seconds <= 0:
        raise InvalidRequestError(f"expiry {text!r} is not in the future")
    return now + timedelta(seconds=seconds)


def check_limit(value: object, what: str) -> int:
    """A non-negative integer limit (0 = unlimited)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31 - 1:
        raise InvalidRequestError(f"{what} must be a whole number >= 0 (0 means unlimited)")
    return value
