"""Probes for compose and Kubernetes: ``GET /healthz`` (alive) and ``GET /readyz`` (usable).

``/healthz`` answers 200 whenever the event loop does: restart the container if it stops.
``/readyz`` answers 200 only when the registry answers and its database is at the newest schema
revision; otherwise 503 with what is wrong, so traffic goes elsewhere while `corral serve`
restarts a crashed registry. Neither touches a runner: a model that fails to load is a request's
error, not a reason to take the whole gateway out of rotation. Ollama's ``GET /`` is unchanged.
"""

from __future__ import annotations

from aiohttp import web

from gateway.keys import REGISTRY
from gateway.streaming import json_response
from services.errors import CorralError

READY_TIMEOUT_S = 2.0


async def healthz(_request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        status = await request.app[REGISTRY].status(timeout=READY_TIMEOUT_S)
    except CorralError as exc:
        return json_response({"status": "unavailable",
                              "registry": {"reachable": False, "error": exc.message}}, 503)
    migrated = bool(status.schema_revision) and status.schema_revision == status.schema_head
    registry = {"reachable": True, "schema_revision": status.schema_revision,
                "schema_head": status.schema_head, "migrated": migrated}
    return json_response({"status": "ready" if migrated else "unavailable",
                          "registry": registry}, 200 if migrated else 503)


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
