"""HTTP handlers for the OpenAI-compatible ``/v1`` endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from aiohttp import web

from gateway.embeddings import EmbeddingService
from gateway.keys import INFERENCE, REGISTRY
from gateway.merging import merge_chat, merge_generate
from gateway.openai import (chat, completions, embeddings, models, responses,
                            responses_stream)
from gateway.openai.wire import openai_error_middleware, openai_json, read_body, sse_stream
from gateway.schemas import ChatParams, GenerateParams
from services.json_types import JSONObject


async def _gather(objects: AsyncGenerator[JSONObject, None]) -> list[JSONObject]:
    async with contextlib.aclosing(objects):
        return [obj async for obj in objects]


async def _one(obj: JSONObject) -> AsyncGenerator[JSONObject, None]:
    yield obj


async def chat_completions(request: web.Request) -> web.StreamResponse:
    req = await read_body(request, chat.STRUCT, parse=chat.ChatCompletionRequest.parse)
    params = ChatParams.parse(req.native)
    service = request.config_dict[INFERENCE]
    # a request whose messages are all empty content arrays only loads, as natively
    objects = (_one(await service.load_chat(params)) if params.is_load
               else service.chat(params, tool_choice=req.tool_choice))
    if req.stream:
        return await sse_stream(request, chat.ChatChunks(req).stream(objects))
    return openai_json(chat.chat_completion(req.id, merge_chat(await _gather(objects))))


async def completions_(request: web.Request) -> web.StreamResponse:
    req = completions.CompletionRequest.parse(await read_body(request, completions.STRUCT))
    params = GenerateParams.parse(req.native)
    service = request.config_dict[INFERENCE]
    objects = (_one(await service.load_generate(params)) if params.is_load
               else service.generate(params))
    if req.stream:
        return await sse_stream(request, completions.CompletionChunks(req).stream(objects))
    merged = merge_generate(await _gather(objects))
    return openai_json(completions.completion(req.id, merged))


async def responses_(request: web.Request) -> web.StreamResponse:
    req = responses.ResponsesRequest.parse(await read_body(request, responses.STRUCT))
    objects = request.config_dict[INFERENCE].chat(ChatParams.parse(req.native))
    if req.stream:
        events = responses_stream.ResponseEvents(req).stream(objects)
        return await sse_stream(request, events, named=True)
    return openai_json(responses.response(req, merge_chat(await _gather(objects))))


async def embeddings_(request: web.Request) -> web.Response:
    req = embeddings.EmbeddingRequest.parse(await read_body(request, embeddings.STRUCT))
    native = await EmbeddingService(request.config_dict[INFERENCE]).embed(req.params)
    return openai_json(embeddings.embedding_list(req, native))


async def list_models(request: web.Request) -> web.Response:
    return openai_json(await models.list_models(request.config_dict[REGISTRY]))


async def retrieve_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    return openai_json(await models.retrieve_model(request.config_dict[REGISTRY], model_id))


def add_openai_routes(app: web.Application) -> None:
    """Mount ``/v1`` as a sub-app whose one middleware speaks OpenAI's errors."""
    v1 = web.Application(middlewares=[openai_error_middleware])
    v1.router.add_post("/chat/completions", chat_completions)
    v1.router.add_post("/completions", completions_)
    v1.router.add_post("/embeddings", embeddings_)
    v1.router.add_post("/responses", responses_)
    v1.router.add_get("/models", list_models)
    v1.router.add_get("/models/{model}", retrieve_model)
    app.add_subapp("/v1", v1)
