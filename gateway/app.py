"""The gateway's aiohttp application: routes, middlewares and shared objects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from gateway.blob_cache import BlobCache
from gateway.caps import RequestCaps
from gateway.anthropic.routes import add_anthropic_routes
from gateway.generation import InferenceService
from gateway.health import add_health_routes
from gateway.keys import BLOBS, INFERENCE, REGISTRY, SCHEDULER, SETTINGS
from gateway.limits import LARGEST_BODY_BYTES
from gateway.metrics import metrics_middleware, setup_metrics
from gateway.middleware import error_middleware, request_id_middleware, request_id_on_prepare
from gateway.openai.routes import add_openai_routes
from gateway.openapi import add_openapi_route
from gateway.preload import start_preload
from gateway.routes import add_routes
from gateway.routes_embed import add_embed_routes
from gateway.routes_keys import add_key_routes
from gateway.routes_models import add_model_routes
from gateway.routes_store import add_store_routes
from gateway.routes_transfer import add_transfer_routes
from gateway.routes_v2 import add_v2_routes
from gateway.scheduler import Scheduler
from gateway.security import install_security, security_middleware
from services.clients.registry import RegistryClient
from services.settings import GatewaySettings

log = structlog.get_logger()

# A backstop only: JSON bodies are read by gateway.limits.read_body with per-route limits, and
# blob uploads stream without one.
MAX_BODY_BYTES = LARGEST_BODY_BYTES


def create_app(settings: GatewaySettings, *, registry: RegistryClient, scheduler: Scheduler,
               blobs: BlobCache | None = None) -> web.Application:
    """The application; it owns ``registry``, ``scheduler`` and ``blobs`` (a
    ``gateway.blob_cache.BlobCache``; None uses the registry's paths as given) and closes them."""
    # request ids outermost so request_finished sees the status the error middleware chose
    # security last: it refuses (origin, host, key, scope, limits) before any handler runs;
    # metrics outside the error translator, so it counts the status clients see
    # /v1, /v1/messages and /v2 are sub-apps with their own error middleware: the parent's
    # middlewares run first for every sub-app request, so origin/host/key checks, request ids
    # and metrics (by full route) are unchanged (tests/gateway/test_error_dialects.py)
    app = web.Application(middlewares=[request_id_middleware, metrics_middleware,
                                       error_middleware, security_middleware],
                          client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[SCHEDULER] = scheduler
    app[BLOBS] = blobs
    app[INFERENCE] = InferenceService(
        registry, scheduler, default_num_ctx=settings.context_length, blobs=blobs,
        caps=RequestCaps(max_num_ctx=settings.max_num_ctx, max_predict=settings.max_predict))
    app.on_response_prepare.append(request_id_on_prepare)
    install_security(app, settings, registry)
    app.cleanup_ctx.append(_owned_resources)
    add_routes(app)
    add_embed_routes(app)
    add_model_routes(app)
    add_openai_routes(app)
    add_anthropic_routes(app)
    add_transfer_routes(app)
    add_store_routes(app)
    add_v2_routes(app)
    add_key_routes(app)
    setup_metrics(app)
    add_health_routes(app)
    add_openapi_route(app)
    return app


async def _owned_resources(app: web.Application) -> AsyncIterator[None]:
    """Preload CORRAL_PRELOAD models; on shutdown stop every runner, then close the registry."""
    start_preload(app)
    yield
    await app[SCHEDULER].shutdown()
    if (blobs := app[BLOBS]) is not None:
        await blobs.close()
    await app[REGISTRY].close()
    log.info("gateway_resources_closed")
