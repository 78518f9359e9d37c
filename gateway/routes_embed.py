"""HTTP handlers for ``/api/embed`` and the legacy ``/api/embeddings``."""

from __future__ import annotations

from aiohttp import web

from gateway.embeddings import EmbeddingService, EmbeddingsParams, EmbedParams
from gateway.keys import INFERENCE
from gateway.schemas import read_json
from gateway.streaming import json_response


async def embed(request: web.Request) -> web.Response:
    params = EmbedParams.parse(await read_json(request, "EmbedRequest"))
    return json_response(await EmbeddingService(request.app[INFERENCE]).embed(params))


async def embeddings(request: web.Request) -> web.Response:
    params = EmbeddingsParams.parse(await read_json(request, "EmbeddingRequest"))
    return json_response(await EmbeddingService(request.app[INFERENCE]).embeddings(params))


def add_embed_routes(app: web.Application) -> None:
    app.router.add_post("/api/embed", embed)
    app.router.add_post("/api/embeddings", embeddings)
