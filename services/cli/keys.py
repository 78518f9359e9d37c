"""``corral keys create|list|revoke``: API keys, through the server's admin API.

``create`` prints the secret alone on stdout (so ``KEY=$(corral keys create ci --scope
inference)`` works) and a note on stderr; it is never shown again. The server needs the caller's
``CORRAL_API_KEY`` to hold the ``admin`` scope once any key exists.

With ``CORRAL_REGISTRY_ADDR`` set, the commands talk to the registry's gRPC service directly
instead: the operator's way in when ``CORRAL_AUTH=required`` and no key exists yet (whoever can
reach the registry is trusted already; it holds every model). Only the secret's SHA-256 ever
leaves this process either way when it creates a key directly; the admin API path hashes on the
server and returns the secret once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from services.api_client import ApiClient
from services.apikeys import SCOPES, check_limit, check_name, check_scopes, hash_secret
from services.apikeys import new_secret, parse_expiry
from services.cli.parser import Invocation, UsageError
from services.cli_format import human_time, table
from services.pb.corral.registry.v1 import registry_pb2 as pb

if TYPE_CHECKING:
    from services.clients.registry import RegistryClient

T = TypeVar("T")

ACTIONS = ("create", "list", "revoke")


def cmd_keys(inv: Invocation, connect: Callable[[], ApiClient], direct: str = "") -> int:
    """Dispatch ``keys ACTION``; ``connect()`` gives an ``ApiClient`` of the server, and a
    ``direct`` registry address (``CORRAL_REGISTRY_ADDR``) bypasses it."""
    action, names = inv.args[0], inv.args[1:]
    if action not in ACTIONS:
        raise UsageError(f'unknown keys action "{action}": use create, list or revoke')
    if action in ("create", "revoke") and len(names) != 1:
        raise UsageError(f"keys {action} accepts 1 arg(s) (NAME), received {len(names)}")
    if action == "list" and names:
        raise UsageError(f"keys list accepts no args, received {len(names)}")
    if action == "create":
        body = _create_body(inv, names[0])
        created = _create_direct(direct, body) if direct else connect().request("POST", "/api/keys", body)
        print(f"Created API key '{created['name']}' with scopes {', '.join(created['scopes'])}. "
              "Store it now: it is not shown again.", file=sys.stderr)
        print(created["key"])
    elif action == "list":
        keys = _list_direct(direct) if direct else connect().request("GET", "/api/keys")["keys"]
        sys.stdout.write(_table(keys))
    else:
        if direct:
            asyncio.run(_with_registry(direct, lambda r: r.revoke_key(names[0])))
        else:
            connect().request("DELETE", f"/api/keys/{check_name(names[0])}")
        print(f"Revoked API key '{names[0]}'.", file=sys.stderr)
    return 0


def _create_body(inv: Invocation, name: str) -> dict[str, Any]:
    if not inv.flags["scope"]:
        raise UsageError(f"keys create needs --scope (one or more of: {', '.join(SCOPES)})")
    body = {"name": check_name(name), "scopes": list(check_scopes(inv.flags["scope"])),
            "requests_per_minute": check_limit(inv.flags["rpm"], "--rpm"),
            "max_concurrent": check_limit(inv.flags["concurrency"], "--concurrency")}
    if inv.flags["expires"]:
        parse_expiry(inv.flags["expires"])  # fail here, before any request
        body["expires"] = inv.flags["expires"]
    return body


def _table(keys: list[dict[str, Any]]) -> str:
    rows = [[k["name"], ",".join(k["scopes"]), human_time(k.get("created_at")),
             human_time(k.get("last_used_at")), _expiry(k),
             _limits(k.get("requests_per_minute", 0), k.get("max_concurrent", 0))] for k in keys]
    return table(["NAME", "SCOPES", "CREATED", "LAST USED", "EXPIRES", "LIMITS"], rows)


def _expiry(key: dict[str, Any]) -> str:
    if not key.get("expires_at"):
        return "Never"
    return "Expired" if key.get("expired") else human_time(key["expires_at"])


def _limits(rpm: int, concurrent: int) -> str:
    parts = ([f"{rpm}/min"] if rpm else []) + ([f"{concurrent} at once"] if concurrent else [])
    return ", ".join(parts) or "-"


# -- straight to the registry (CORRAL_REGISTRY_ADDR) ----------------------------------------------

async def _with_registry(address: str, call: Callable[[RegistryClient], Awaitable[T]]) -> T:
    from services.clients.registry import RegistryClient

    registry = RegistryClient(address)
    try:
        await registry.wait_ready(10.0)
        return await call(registry)
    finally:
        await registry.close()


def _create_direct(address: str, body: dict[str, Any]) -> dict[str, Any]:
    secret = new_secret()
    request = pb.CreateKeyRequest(name=body["name"], scopes=body["scopes"], key_hash=hash_secret(secret),
                                  requests_per_minute=body["requests_per_minute"],
                                  max_concurrent=body["max_concurrent"])
    if body.get("expires") and (expires := parse_expiry(body["expires"])) is not None:
        request.expires_at.FromDatetime(expires)
    key = asyncio.run(_with_registry(address, lambda r: r.create_key(request)))
    return {"name": key.name, "scopes": list(key.scopes), "key": secret}


def _list_direct(address: str) -> list[dict[str, Any]]:
    keys = asyncio.run(_with_registry(address, lambda r: r.list_keys()))
    return [_described(k) for k in keys]


def _described(key: pb.ApiKey) -> dict[str, Any]:
    out = {"name": key.name, "scopes": list(key.scopes),
           "created_at": key.created_at.ToJsonString(),
           "requests_per_minute": key.requests_per_minute, "max_concurrent": key.max_concurrent}
    if key.HasField("last_used_at"):
        out["last_used_at"] = key.last_used_at.ToJsonString()
    if key.HasField("expires_at"):
        out["expires_at"] = key.expires_at.ToJsonString()
        out["expired"] = key.expires_at.ToDatetime(tzinfo=UTC) <= datetime.now(UTC)
    return out

