"""HTTP handlers for Ollama's native API: parse, call one service method, stream or return."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from gateway import listings
from gateway.keys import INFERENCE, REGISTRY, SCHEDULER
from gateway.merging import merge_chat, merge_generate
from gateway.schemas import ChatParams, GenerateParams, InferenceParams, read_json
from gateway.streaming import collect, json_response, ndjson_stream

# The Ollama version we claim. Clients gate features on it (ollama-python, Open WebUI, the
# OpenAI shims check for >= 0.5 or so), and 0.13 is the behaviour ollama-api.md documents.
OLLAMA_VERSION = "0.13.0"


async def root(_request: web.Request) -> web.Response:
    return web.Response(body=b"Ollama is running", headers={"Content-Type": "text/plain; charset=utf-8"})


async def version(_request: web.Request) -> web.Response:
    return json_response({"version": OLLAMA_VERSION})


async def tags(request: web.Request) -> web.Response:
    return json_response(await listings.tags(request.app[REGISTRY]))


async def ps(request: web.Request) -> web.Response:
    return json_response(listings.ps(request.app[SCHEDULER]))


async def generate(request: web.Request) -> web.StreamResponse:
    params = await read_json(request, "GenerateRequest", parse=GenerateParams.parse)
    service = request.app[INFERENCE]
    return await _answer(request, params, service.load_generate, service.generate, merge_generate)


async def chat(request: web.Request) -> web.StreamResponse:
    params = await read_json(request, "ChatRequest", parse=ChatParams.parse)
    service = request.app[INFERENCE]
    return await _answer(request, params, service.load_chat, service.chat, merge_chat)


P = TypeVar("P", bound=InferenceParams)
Merge = Callable[[list[dict[str, Any]]], dict[str, Any]]


async def _answer(request: web.Request, params: P, load: Callable[[P], Awaitable[dict[str, Any]]],
                  run: Callable[[P], AsyncGenerator[dict[str, Any], None]], merge: Merge,
                  ) -> web.StreamResponse:
    """A load (no prompt) as one object; else the stream, or one merged object for
    ``stream: false`` and debug replies."""
    if params.is_load:
        return json_response(await load(params))
    objects = run(params)
    if not params.stream or params.debug_render_only:  # debug replies are one object
        return await collect(objects, merge)
    return await ndjson_stream(request, objects)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    app.router.add_post("/api/generate", generate)
    app.router.add_post("/api/chat", chat)
