"""API-key authentication: which scope each route needs, and who the caller is.

Auth is off while no key exists and ``CORRAL_AUTH`` is not ``required`` (Ollama's behaviour on a
laptop); it is on as soon as one key exists. The gateway asks the registry on every request
(one in-memory lookup there, by the key's SHA-256), so nothing here caches a key: a revoked key
fails on its very next request, whichever process revoked it. While the registry cannot be
asked (``corral serve`` restarts a crashed one), a gateway that last saw auth off stays off, so
``/metrics`` and ``/api/ps`` still answer the operator watching the outage; one that last saw
keys (or has not asked yet) refuses with 503: a key it cannot check is not accepted.

Clients present the key as ``Authorization: Bearer <key>`` (OpenAI SDK ``api_key``,
ollama-python ``Client(headers=...)``, ``CORRAL_API_KEY`` for the CLI) or as the password of
``Basic`` credentials (the Docker/OCI token flow on ``/v2/``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import structlog
from aiohttp import web

from gateway.ports import RegistryPort
from services.apikeys import (
    ADMIN, INFERENCE, MANAGE, METRICS, READ, REGISTRY_PULL, REGISTRY_PUSH, grants, hash_secret,
)
from services.errors import CorralError
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import AUTH_REQUIRED

log = structlog.get_logger()

PUBLIC: frozenset[str] = frozenset()
TOKEN_PATH = "/v2/token"

# Every route's scope, by aiohttp's canonical path; /v1/* and /v2/* follow rules below.
# A route missing here needs "admin" (fail closed); tests/gateway/test_auth.py checks that every
# registered route is listed, so a new route cannot silently become admin-only or public.
ROUTE_SCOPES: dict[str, frozenset[str]] = {
    "/": PUBLIC, "/healthz": PUBLIC, "/readyz": PUBLIC, TOKEN_PATH: PUBLIC,
    "/openapi.json": PUBLIC,  # the published description of the API: nothing secret in it
    "/api/version": frozenset({READ}), "/api/tags": frozenset({READ}),
    "/api/ps": frozenset({READ}), "/api/show": frozenset({READ}),
    "/api/generate": frozenset({INFERENCE}), "/api/chat": frozenset({INFERENCE}),
    "/api/embed": frozenset({INFERENCE}), "/api/embeddings": frozenset({INFERENCE}),
    "/api/create": frozenset({MANAGE}), "/api/copy": frozenset({MANAGE}),
    "/api/delete": frozenset({MANAGE}), "/api/blobs/{digest}": frozenset({MANAGE}),
    "/api/pull": frozenset({MANAGE}), "/api/push": frozenset({MANAGE}),
    "/api/rescan": frozenset({MANAGE}), "/api/verify": frozenset({MANAGE}),
    "/api/manifests/{name}": frozenset({MANAGE}),  # corral save/load (blobs then go by /v2/)
    "/api/keys": frozenset({ADMIN}), "/api/keys/{name}": frozenset({ADMIN}),
    "/metrics": frozenset({METRICS}),
}
V1_READ = frozenset({"/v1/models", "/v1/models/{model}"})
_READ_METHODS = frozenset({"GET", "HEAD"})


def route_path(request: web.Request) -> str:
    """The matched route's canonical path (``/api/blobs/{digest}``), or the raw path for a 404."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def needed_scopes(method: str, path: str) -> frozenset[str]:
    """The scopes of which a key needs any one for ``method path`` (empty: no key needed)."""
    if path in ROUTE_SCOPES:
        return ROUTE_SCOPES[path]
    if path.startswith("/v1/"):
        return frozenset({READ}) if path in V1_READ else frozenset({INFERENCE})
    if is_v2(path):
        if path in ("/v2", "/v2/"):
            return frozenset({REGISTRY_PULL, REGISTRY_PUSH})
        return frozenset({REGISTRY_PULL if method in _READ_METHODS else REGISTRY_PUSH})
    return frozenset({ADMIN})


def presented_secret(request: web.Request) -> str | None:
    """The key in ``Authorization``: a Bearer token, or a Basic password (the username is
    free: Docker clients need one)."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user or None
    return None


@dataclass(frozen=True)
class Caller:
    """Who sent a request: ``key`` is None when auth is off."""

    auth_on: bool
    key: pb.ApiKey | None = None


class AuthFailed(Exception):  # noqa: N818 - a signal carrying the 401/403's details
    """The caller may not do this: ``status`` 401 (no valid key), 403 (missing scope) or 503
    (the registry, which checks keys, cannot be asked)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Authenticator:
    """Turns a request's credentials into a ``Caller`` by asking the registry."""

    def __init__(self, registry: RegistryPort, mode: str) -> None:
        self._registry = registry
        self._required = mode == AUTH_REQUIRED
        self._keys_seen: bool | None = None  # keys_exist at the last answer (None: never asked)

    async def keys_exist(self) -> bool:
        return (await self._check("")).keys_exist

    async def _check(self, key_hash: str) -> pb.CheckKeyResponse:
        reply = await self._registry.check_key(key_hash)
        self._keys_seen = reply.keys_exist
        return reply

    async def caller(self, secret: str | None) -> Caller:
        """The caller presenting ``secret`` (``AuthFailed`` 401 when auth is on and the key is
        missing, unknown, revoked or expired; 503 when auth may be on and the registry cannot
        be asked)."""
        try:
            reply = await self._check(hash_secret(secret) if secret else "")
        except CorralError as exc:
            if self._required or self._keys_seen is not False:
                raise AuthFailed(503, f"cannot check the API key: {exc.message}") from None
            log.info("auth_check_skipped", reason=exc.message, auth="off")
            return Caller(auth_on=False)
        if not (self._required or reply.keys_exist):
            return Caller(auth_on=False)
        if secret is None:
            raise AuthFailed(401, "unauthorized: this server requires an API key "
                                  "(send it as 'Authorization: Bearer <key>')")
        if reply.status == pb.KEY_STATUS_EXPIRED:
            raise AuthFailed(401, "unauthorized: API key expired")
        if reply.status != pb.KEY_STATUS_VALID:
            raise AuthFailed(401, "unauthorized: invalid API key")
        return Caller(auth_on=True, key=reply.key)

    @staticmethod
    def authorize(caller: Caller, needed: frozenset[str]) -> None:
        """``AuthFailed`` 403 unless the caller's key holds one of ``needed`` (or ``admin``)."""
        if not caller.auth_on or not needed:
            return
        assert caller.key is not None, "a caller with auth on always carries its key"
        if grants(list(caller.key.scopes), needed):
            return
        wanted = " or ".join(f"'{s}'" for s in sorted(needed))
        raise AuthFailed(403, f"forbidden: API key {caller.key.name!r} lacks the {wanted} scope")
