"""The one security middleware, before routing reaches a handler: browser guard, key, limits.

Order, each step refusing before anything runs: (1) a cross-site ``Origin`` not allowed → 403;
(2) on a loopback bind, a ``Host`` that is not local → 403 (DNS rebinding); (3) ``OPTIONS`` is
answered here (204, with Ollama's preflight headers for an allowed origin); (4) the route's
scope: a missing/invalid key → 401 with ``WWW-Authenticate``, a key without the scope → 403;
(5) the key's requests per minute and, for inference routes, its concurrent generations →
429 with ``Retry-After``. The key's name (never the secret) is bound to every log line of the
request. Refusals use the shape of the API family: Ollama's ``{"error": …}``, OpenAI's error
object on ``/v1/``, Anthropic's on ``/v1/messages``, the OCI ``{"errors": […]}`` on ``/v2/``
(gateway/openapi documents them per family).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.anthropic.wire import error_body as anthropic_error_body
from gateway.auth import (
    AuthFailed, Authenticator, Caller, TOKEN_PATH, is_v2, needed_scopes, presented_secret,
    route_path,
)
from gateway.keys import SETTINGS
from gateway.origins import HostGuard, OriginPolicy, host_guard_for, is_cross_origin, split_host
from gateway.ports import RegistryPort
from gateway.ratelimit import KeyLimiter, RateLimited
from services.apikeys import INFERENCE
from services.settings import AUTH_REQUIRED, GatewaySettings

log = structlog.get_logger()

# The CORS headers owed to the current request's response, whoever builds it (a handler, a
# stream, the error middleware); reset per request, since one task serves a keep-alive connection.
_CORS_HEADERS: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("cors_headers")
_GENERATIONS = frozenset({INFERENCE})
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_OCI_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}


@dataclass
class Security:
    """What the middleware consults; ``hosts`` is settled at startup (it may resolve a name)."""

    origins: OriginPolicy
    auth: Authenticator
    limits: KeyLimiter
    hosts: HostGuard = HostGuard(active=False)


SECURITY = web.AppKey("security", Security)


def install_security(app: web.Application, settings: GatewaySettings,
                     registry: RegistryPort) -> None:
    """Set up the policy objects, the CORS response hook and the startup checks on ``app``
    (the middleware itself is listed in ``create_app``)."""
    app[SECURITY] = Security(origins=OriginPolicy.from_origins(settings.origins),
                             auth=Authenticator(registry, settings.auth), limits=KeyLimiter())
    app.on_response_prepare.append(_add_cors_headers)
    app.on_startup.append(_startup_checks)


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    security = request.app[SECURITY]
    _CORS_HEADERS.set({})
    if (refusal := _browser_guard(request, security)) is not None:
        return refusal
    if request.method == "OPTIONS":
        return web.Response(status=204)
    path = route_path(request)
    needed = needed_scopes(request.method, path)
    if not needed:
        return await handler(request)
    try:
        caller = await _admit(request, security, needed)
        with _generation_slot(security, caller, needed):
            return await handler(request)
    except AuthFailed as exc:
        log.info("request_refused", status=exc.status, reason=exc.message)
        return refusal_response(request, path, exc.status, exc.message)
    except RateLimited as exc:
        log.info("request_refused", status=429, reason=exc.message)
        response = refusal_response(request, path, 429, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response


async def _admit(request: web.Request, security: Security, needed: frozenset[str]) -> Caller:
    """The caller, once its key, scope and request rate pass (``AuthFailed``/``RateLimited``)."""
    caller = await security.auth.caller(presented_secret(request))
    if caller.key is not None:
        structlog.contextvars.bind_contextvars(key_name=caller.key.name)
    security.auth.authorize(caller, needed)
    if caller.key is not None:
        security.limits.take(caller.key.name, caller.key.requests_per_minute)
    return caller


def _generation_slot(security: Security, caller: Caller,
                     needed: frozenset[str]) -> contextlib.AbstractContextManager[object]:
    """One of the key's concurrent generations for an inference route (``RateLimited`` if none)."""
    if caller.key is None or needed != _GENERATIONS:
        return contextlib.nullcontext()
    return security.limits.generation(caller.key.name, caller.key.max_concurrent)


def _browser_guard(request: web.Request, security: Security) -> web.Response | None:
    """Ollama's CORS check, then its Host check; a refusal, or None to go on."""
    host_header = request.headers.get("Host", "")
    origin = request.headers.get("Origin", "")
    if is_cross_origin(origin, host_header):
        if not security.origins.allows(origin):
            log.info("request_refused", status=403, reason="origin not allowed", origin=origin[:200])
            return _forbidden(request, f"origin not allowed: {origin[:200]} "
                                       "(add it to OLLAMA_ORIGINS)")
        headers = (security.origins.preflight_headers(origin) if request.method == "OPTIONS"
                   else security.origins.response_headers(origin))
        _CORS_HEADERS.set(headers)
        if request.method == "OPTIONS":  # gin-contrib/cors answers a valid preflight itself
            return web.Response(status=204, headers=headers)
    if security.hosts.active and not _host_allowed(security.hosts, split_host(host_header)):
        log.info("request_refused", status=403, reason="host not allowed", host=host_header[:200])
        return _forbidden(request, "host not allowed: this server is bound to a loopback "
                                   "address (see OLLAMA_HOST)")
    return None


def _host_allowed(guard: HostGuard, host: str) -> bool:
    by_ip = guard.allows_ip(host)
    return by_ip if by_ip is not None else guard.allows_name(host)


def _forbidden(request: web.Request, message: str) -> web.Response:
    """The browser guard's 403, in the family's shape like every other refusal."""
    return refusal_response(request, route_path(request), 403, message)


def refusal_response(request: web.Request, path: str, status: int, message: str) -> web.Response:
    """A 401/403/429 in the API family's error shape; a 401 carries its ``WWW-Authenticate``."""
    headers: dict[str, str] = {}
    if is_v2(path):
        body: object = {"errors": [{"code": _OCI_CODES.get(status, "UNKNOWN"), "message": message,
                                    "detail": None}]}
        headers["Docker-Distribution-API-Version"] = "registry/2.0"
        if status == 401:
            headers["WWW-Authenticate"] = registry_challenge(request)
    elif path == "/v1/messages" or path.startswith("/v1/messages/"):
        body = anthropic_error_body(status, message)
    elif path.startswith("/v1/"):
        body = {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "api_error"),
                          "param": None, "code": None}}
    else:
        body = {"error": message}
    if status == 401 and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = 'Bearer realm="corral"'
    return web.Response(status=status, body=json.dumps(body).encode(),
                        content_type="application/json", headers=headers)


def registry_challenge(request: web.Request) -> str:
    """The distribution spec's token challenge: where to get a token, for what.

    The realm is this server's own ``/v2/token``, so Docker clients, ORAS and Corral's own puller
    fetch a token there with the key as the Basic password.
    """
    host = request.headers.get("Host") or f"{request.url.host}:{request.url.port}"
    challenge = f'Bearer realm="{request.scheme}://{host}{TOKEN_PATH}",service="corral"'
    namespace, model = request.match_info.get("namespace"), request.match_info.get("model")
    if namespace and model:
        action = "pull" if request.method in ("GET", "HEAD") else "push,pull"
        challenge += f',scope="repository:{namespace}/{model}:{action}"'
    return challenge


async def _add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in _CORS_HEADERS.get({}).items():
        response.headers.setdefault(name, value)


async def _startup_checks(app: web.Application) -> None:
    """Settle the Host guard for the real bind address; warn loudly when the API is open."""
    settings = app[SETTINGS]
    security = app[SECURITY]
    security.hosts = await host_guard_for(settings.host.host)
    try:
        keys_exist = await security.auth.keys_exist()
    except Exception as exc:  # noqa: BLE001 - the registry may still be starting
        log.warning("auth_state_unknown", error=str(exc))
        return
    if settings.auth == AUTH_REQUIRED and not keys_exist:
        log.warning("auth_required_without_keys",
                    message="CORRAL_AUTH=required and no API key exists: every request that "
                            "needs a key gets 401. Create one with 'corral keys create NAME "
                            "--scope admin' with CORRAL_REGISTRY_ADDR pointing at the registry.")
    elif not keys_exist and not security.hosts.active:
        log.warning("auth_off_on_network",
                    address=settings.host.url,
                    message="WARNING: bound to a non-loopback address with authentication OFF: "
                            "anyone who can reach this port can run, create and delete models. "
                            "Create an API key ('corral keys create NAME --scope admin') or set "
                            "CORRAL_AUTH=required.")
    log.info("auth_state", auth=settings.auth, keys_exist=keys_exist,
             host_check=security.hosts.active)
