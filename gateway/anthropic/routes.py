"""HTTP handlers for Anthropic's Messages API: ``POST /v1/messages`` and
``POST /v1/messages/count_tokens`` (what Claude Code and most agent tools speak)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from aiohttp import web

from gateway.anthropic.reply import MessageEvents, message_object
from gateway.anthropic.request import STRUCT, MessagesRequest
from gateway.anthropic.wire import (KEEPALIVE, PING_INTERVAL_S, anthropic_error_middleware,
                                    json_reply, sse_events, with_keepalive)
from gateway.keys import INFERENCE
from gateway.merging import merge_chat
from gateway.schemas import ChatParams, read_json
from services.json_types import JSONObject


async def _read(request: web.Request, struct: str) -> JSONObject:
    """The JSON body; Go's decoder errors name the ``anthropic.<struct>`` type, as Ollama's."""
    body: JSONObject = await read_json(request, struct, package="anthropic")
    return body


def _params(req: MessagesRequest) -> ChatParams:
    return ChatParams.parse({**req.native, "stream": req.stream})


async def _events(req: MessagesRequest, objects: AsyncGenerator[JSONObject, None],
                  interval: float) -> AsyncGenerator[JSONObject, None]:
    converter = MessageEvents(req)
    async with contextlib.aclosing(objects):
        async for item in with_keepalive(objects, interval):
            for event in (converter.keepalive() if item is KEEPALIVE else converter.convert(item)):
                yield event


async def messages(request: web.Request) -> web.StreamResponse:
    req = MessagesRequest.parse(await _read(request, STRUCT))
    objects = request.config_dict[INFERENCE].chat(_params(req), tool_choice=req.tool_choice,
                                          relax_thinking=True)
    if req.stream:
        return await sse_events(request, _events(req, objects, PING_INTERVAL_S))
    async with contextlib.aclosing(objects):
        native = merge_chat([obj async for obj in objects])
    return json_reply(message_object(req, native))


async def count_tokens(request: web.Request) -> web.Response:
    req = MessagesRequest.parse(await _read(request, "CountTokensRequest"), count_only=True)
    count = await request.config_dict[INFERENCE].count_chat_tokens(_params(req),
                                                           tool_choice=req.tool_choice)
    return json_reply({"input_tokens": count})


def add_anthropic_routes(app: web.Application) -> None:
    """Mount ``/v1/messages`` as a sub-app whose one middleware speaks Anthropic's errors (the
    router matches its longer prefix before ``/v1``'s)."""
    messages_app = web.Application(middlewares=[anthropic_error_middleware])
    messages_app.router.add_post("", messages)
    messages_app.router.add_post("/count_tokens", count_tokens)
    app.add_subapp("/v1/messages", messages_app)
