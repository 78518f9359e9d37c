"""The gateway's aiohttp application: routes, middlewares and shared objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from gateway.generation import InferenceService
from gateway.keys import BLOBS, INFERENCE, REGISTRY, SCHEDULER, SETTINGS
from gateway.middleware import error_middleware, request_id_middleware, request_id_on_prepare
from gateway.openai.routes import add_openai_routes
from gateway.preload import start_preload
from gateway.routes import add_routes
from gateway.routes_embed import add_embed_routes
from gateway.routes_models import add_model_routes
from gateway.routes_transfer import add_transfer_routes
from gateway.routes_v2 import add_v2_routes
from gateway.scheduler import Scheduler
from services.settings import GatewaySettings

log = structlog.get_logger()

MAX_BODY_BYTES = 256 * 1024 * 1024  # images travel base64 in JSON bodies


def create_app(settings: GatewaySettings, *, registry: Any, scheduler: Scheduler,
               blobs: Any = None) -> web.Application:
    """The application; it owns ``registry``, ``scheduler`` and ``blobs`` (a
    ``gateway.blob_cache.BlobCache``; None uses the registry's paths as given) and closes them."""
    # request ids outermost so request_finished sees the status the error middleware chose
    app = web.Application(middlewares=[request_id_middleware, error_middleware],
                          client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[SCHEDULER] = scheduler
    app[BLOBS] = blobs
    app[INFERENCE] = InferenceService(registry, scheduler, default_num_ctx=settings.context_length,
                                      blobs=blobs)
    app.on_response_prepare.append(request_id_on_prepare)
    app.cleanup_ctx.append(_owned_resources)
    add_routes(app)
    add_embed_routes(app)
    add_model_routes(app)
    add_openai_routes(app)
    add_transfer_routes(app)
    add_v2_routes(app)
    return app


async def _owned_resources(app: web.Application) -> AsyncIterator[None]:
    """Preload CORRAL_PRELOAD models; on shutdown stop every runner, then close the registry."""
    start_preload(app)
    yield
    await app[SCHEDULER].shutdown()
    if app[BLOBS] is not None:
        await app[BLOBS].close()
    await app[REGISTRY].close()
    log.info("gateway_resources_closed")
