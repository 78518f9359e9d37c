"""``CORRAL_PRELOAD``: load and pin the listed models when the gateway starts (a Corral extension).

The loads run in the background, one after another, so the API answers at once and ``/api/ps``
shows them as ``loading``. A model that cannot be resolved or loaded is logged and skipped.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from gateway.keys import INFERENCE, SCHEDULER, SETTINGS
from gateway.model_ref import ModelRef
from services.errors import CorralError, ModelNotFoundError

log = structlog.get_logger()


def start_preload(app: web.Application) -> None:
    """Start preloading ``CORRAL_PRELOAD`` (a no-op when it is empty)."""
    names = app[SETTINGS].preload
    if names:
        app[SCHEDULER].run_in_background(preload_models(app, names))


async def preload_models(app: web.Application, names: tuple[str, ...]) -> None:
    """Resolve each model, work out its default num_ctx, load it pinned (keep_alive forever)."""
    inference, scheduler = app[INFERENCE], app[SCHEDULER]
    for name in names:
        try:
            resolved = await inference.resolve(name, empty=ModelNotFoundError("model '' not found"))
            options = inference.options(resolved, {})
            num_ctx = options.num_ctx
            await scheduler.preload(ModelRef.of(resolved), num_ctx, options.load_options())
        except CorralError as exc:
            log.warning("preload_failed", model=name, error=exc.message)
            continue
        log.info("model_preloaded", model=name, num_ctx=num_ctx)
