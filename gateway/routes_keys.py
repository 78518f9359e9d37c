"""API-key administration (``/api/keys``, scope ``admin``) and the ``/v2/token`` endpoint.

``POST /api/keys`` makes the secret here, sends only its SHA-256 to the registry and returns the
secret in this one response; nothing can show it again. ``GET /api/keys`` lists descriptions,
``DELETE /api/keys/{name}`` revokes (the key's next request is refused).

``GET /v2/token`` is the distribution spec's token endpoint that ``/v2/``'s 401 challenge
names: a client presents the key (as the Basic password, the Docker flow, or as a Bearer) and
gets it back as the token. Handing back the key itself, rather than minting a derived token,
keeps revocation immediate on ``/v2/`` too: every request is checked against the registry.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import structlog
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import TOKEN_PATH, AuthFailed, presented_secret
from gateway.keys import REGISTRY
from gateway.schemas import read_json
from gateway.security import SECURITY, refusal_response
from gateway.streaming import local_timestamp
from services.apikeys import (
    check_limit, check_name, check_scopes, hash_secret, new_secret, parse_expiry,
)
from services.errors import InvalidRequestError
from services.gocodec import typed_field
from services.pb.corral.registry.v1 import registry_pb2 as pb

TOKEN_LIFETIME_S = 3600
log = structlog.get_logger()


def key_dict(key: pb.ApiKey) -> dict[str, Any]:
    """A key's description as JSON (timestamps in Ollama's local RFC 3339 form)."""
    now = dt.datetime.now(dt.UTC)
    out = {"name": key.name, "scopes": list(key.scopes),
           "created_at": local_timestamp(key.created_at.ToDatetime(tzinfo=dt.UTC)),
           "requests_per_minute": key.requests_per_minute, "max_concurrent": key.max_concurrent}
    if key.HasField("last_used_at"):
        out["last_used_at"] = local_timestamp(key.last_used_at.ToDatetime(tzinfo=dt.UTC))
    if key.HasField("expires_at"):
        expires = key.expires_at.ToDatetime(tzinfo=dt.UTC)
        out["expires_at"] = local_timestamp(expires)
        out["expired"] = expires <= now
    return out


def create_request(body: dict[str, Any]) -> pb.CreateKeyRequest:
    """The registry request for a ``POST /api/keys`` body (validated: 400 on bad input)."""
    s = "CreateKeyRequest"
    scopes = typed_field(body, s, "scopes", "array", "[]string", [])
    if not all(isinstance(scope, str) for scope in scopes):
        raise InvalidRequestError("scopes must be a list of strings")
    request = pb.CreateKeyRequest(
        name=check_name(typed_field(body, s, "name", "string", default="")),
        scopes=list(check_scopes(scopes)),
        requests_per_minute=check_limit(
            typed_field(body, s, "requests_per_minute", "int", default=0), "requests_per_minute"),
        max_concurrent=check_limit(typed_field(body, s, "max_concurrent", "int", default=0),
                                   "max_concurrent"))
    expires = parse_expiry(typed_field(body, s, "expires", "string", default=""))
    if expires is not None:
        stamp = Timestamp()
        stamp.FromDatetime(expires)
        request.expires_at.CopyFrom(stamp)
    return request


async def create_key(request: web.Request) -> web.Response:
    message = create_request(await read_json(request, "CreateKeyRequest"))
    secret = new_secret()
    message.key_hash = hash_secret(secret)
    key = await request.app[REGISTRY].create_key(message)
    log.info("api_key_created", new_key=key.name, scopes=list(key.scopes))
    return web.json_response({**key_dict(key), "key": secret})


async def list_keys(request: web.Request) -> web.Response:
    keys = await request.app[REGISTRY].list_keys()
    return web.json_response({"keys": [key_dict(k) for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await request.app[REGISTRY].revoke_key(name)
    log.info("api_key_revoked", revoked_key=name)
    return web.Response(status=200)


async def token(request: web.Request) -> web.Response:
    """The token endpoint: the presented key, checked, handed back as the bearer token."""
    secret = presented_secret(request)
    try:
        caller = await request.app[SECURITY].auth.caller(secret)
    except AuthFailed as exc:
        if exc.status != 401:  # the registry cannot be asked
            return refusal_response(request, TOKEN_PATH, exc.status, exc.message)
        body = {"errors": [{"code": "UNAUTHORIZED", "message": exc.message, "detail": None}]}
        return web.Response(status=401, body=json.dumps(body).encode(),
                             content_type="application/json",
                             headers={"WWW-Authenticate": 'Basic realm="corral"'})
    issued = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    value = secret if caller.auth_on else "anonymous"
    if caller.key is not None:
        structlog.contextvars.bind_contextvars(key_name=caller.key.name)
    return web.json_response({"token": value, "access_token": value,
                              "expires_in": TOKEN_LIFETIME_S, "issued_at": issued})


def add_key_routes(app: web.Application) -> None:
    app.router.add_get("/api/keys", list_keys)
    app.router.add_post("/api/keys", create_key)
    app.router.add_delete("/api/keys/{name}", revoke_key)
    app.router.add_get("/v2/token", token)
