"""``POST /api/pull`` and ``POST /api/push``: Ollama's progress NDJSON from the registry's streams.

Progress objects are ``api.ProgressResponse``: ``status`` always; ``digest``, ``total`` and
``completed`` only when non-empty (so a layer's first line may lack ``completed``).
``"stream": false`` answers the last object (``{"status":"success"}``) or the error; failures
of the transfer itself are 500s, as Ollama's ``waitForStream`` reports them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

from aiohttp import web

from gateway.keys import REGISTRY
from gateway.metrics import METRICS
from gateway.schemas import model_or_name, read_json
from gateway.streaming import collect, ndjson_stream
from services.errors import InvalidRequestError
from services.gocodec import typed_field
from services.names import parse_name
from services.pb.corral.registry.v1 import registry_pb2 as pb


def progress_dict(progress: pb.Progress) -> dict[str, Any]:
    """A ``Progress`` message as Ollama's JSON object (``omitempty`` fields left out)."""
    out: dict[str, Any] = {"status": progress.status}
    if progress.digest:
        out["digest"] = progress.digest
    if progress.total:
        out["total"] = progress.total
    if progress.completed:
        out["completed"] = progress.completed
    return out


async def _objects(progress: AsyncGenerator[pb.Progress, None]
                   ) -> AsyncGenerator[dict[str, Any], None]:
    async with contextlib.aclosing(progress):  # a client gone ends the transfer (and its count)
        async for item in progress:
            yield progress_dict(item)


def _reply(request: web.Request, progress: AsyncGenerator[pb.Progress, None],
           stream: bool) -> Awaitable[web.StreamResponse]:
    objects = _objects(progress)
    if not stream:
        return collect(objects, lambda items: items[-1] if items else {"status": "success"})
    return ndjson_stream(request, objects)


async def pull(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, "PullRequest")
    name = model_or_name(body, "PullRequest")
    insecure = typed_field(body, "PullRequest", "insecure", "bool", default=False)
    stream = typed_field(body, "PullRequest", "stream", "bool", default=True)
    parse_name(name)  # 400 "invalid model name" before anything is sent
    progress = request.app[REGISTRY].pull(name, insecure=insecure)
    return await _reply(request, request.app[METRICS].transfer("pull", progress), stream)


async def push(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, "PushRequest")
    name = model_or_name(body, "PushRequest")
    insecure = typed_field(body, "PushRequest", "insecure", "bool", default=False)
    stream = typed_field(body, "PushRequest", "stream", "bool", default=True)
    if not name:
        raise InvalidRequestError("model is required")
    parse_name(name)
    progress = request.app[REGISTRY].push(name, insecure=insecure)
    return await _reply(request, request.app[METRICS].transfer("push", progress), stream)


def add_transfer_routes(app: web.Application) -> None:
    app.router.add_post("/api/pull", pull)
    app.router.add_post("/api/push", push)
