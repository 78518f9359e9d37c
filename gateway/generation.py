"""The inference service behind ``/api/generate`` and ``/api/chat``.

Each method resolves the model, merges options, renders the prompt, holds a runner through the
Scheduler and yields Ollama's wire objects. Errors raised before the first object surface as a
proper HTTP status (see ``streaming.ndjson_stream``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.json_format import MessageToDict

from gateway import prompt as prompts
from gateway.options import ModelOptions
from gateway.scheduler import Scheduler
from gateway.schemas import ChatParams, GenerateParams
from gateway.streaming import utc_timestamp
from services.errors import CorralError, InvalidRequestError, ModelNotFoundError
from services.pb.corral.runner.v1 import runner_pb2 as pb

DONE_REASONS = {pb.DONE_REASON_STOP: "stop", pb.DONE_REASON_LENGTH: "length",
                pb.DONE_REASON_CANCELLED: "cancelled"}
ASSISTANT_EMPTY = {"role": "assistant", "content": ""}


class InferenceService:
    """Generate and chat over the registry (names → models) and the scheduler (→ runners)."""

    def __init__(self, registry: Any, scheduler: Scheduler, *, default_num_ctx: int) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.default_num_ctx = default_num_ctx

    async def resolve(self, name: str, *, empty: CorralError) -> Any:
        """The registry's ResolveModelResponse for ``name``; ``empty`` is raised for ``""``."""
        if not name:
            raise empty
        return await self.registry.resolve(name)

    def options(self, resolved: Any, request_options: dict) -> ModelOptions:
        """defaults < Modelfile PARAMETERs < request, num_ctx capped at the trained context."""
        parameters = MessageToDict(resolved.parameters) if resolved.HasField("parameters") else {}
        merged = ModelOptions.merge(parameters, request_options, num_ctx=self.default_num_ctx)
        trained = resolved.model.details.context_length
        if trained and merged.num_ctx > trained:
            merged = ModelOptions({**merged.values, "num_ctx": trained})
        return merged

    # -- generate -------------------------------------------------------------------------------

    async def generate(self, p: GenerateParams) -> AsyncIterator[dict]:
        started = time.monotonic_ns()
        resolved = await self.resolve(p.model, empty=ModelNotFoundError("model '' not found"))
        if p.raw and (p.system is not None or p.context):
            raise InvalidRequestError("raw mode does not support template, system, or context")
        options = self.options(resolved, p.options)
        text = p.prompt if p.raw else prompts.render(resolved, prompts.generate_messages(
            resolved, p.prompt, system=p.system, with_history=not p.context))
        request = options.generate_request(text, context=p.context)
        async with self.scheduler.acquire(resolved, options.num_ctx, p.keep_alive) as lease:
            async for event in lease.generate(request):
                if event.HasField("chunk"):
                    yield {"model": p.model, "created_at": utc_timestamp(),
                           "response": event.chunk.text, "done": False}
                else:
                    yield {"model": p.model, "created_at": utc_timestamp(), "response": "",
                           **final_fields(event.done, started, lease.load_duration_ns,
                                          context=not p.raw)}

    async def load_generate(self, p: GenerateParams) -> dict:
        """Empty prompt: load (``done_reason: load``) or, with keep_alive 0, unload."""
        resolved = await self.resolve(p.model, empty=ModelNotFoundError("model '' not found"))
        reason = await self._load_or_unload(resolved, p)
        return {"model": p.model, "created_at": utc_timestamp(), "response": "", "done": True,
                "done_reason": reason}

    # -- chat -----------------------------------------------------------------------------------

    async def chat(self, p: ChatParams) -> AsyncIterator[dict]:
        started = time.monotonic_ns()
        resolved = await self.resolve(p.model, empty=InvalidRequestError("model is required"))
        options = self.options(resolved, p.options)
        text = prompts.render(resolved, prompts.chat_messages(resolved, p.messages))
        request = options.generate_request(text)
        async with self.scheduler.acquire(resolved, options.num_ctx, p.keep_alive) as lease:
            async for event in lease.generate(request):
                if event.HasField("chunk"):
                    yield {"model": p.model, "created_at": utc_timestamp(),
                           "message": {"role": "assistant", "content": event.chunk.text},
                           "done": False}
                else:
                    yield {"model": p.model, "created_at": utc_timestamp(),
                           "message": dict(ASSISTANT_EMPTY),
                           **final_fields(event.done, started, lease.load_duration_ns)}

    async def load_chat(self, p: ChatParams) -> dict:
        """No messages: load (``done_reason: load``) or, with keep_alive 0, unload."""
        resolved = await self.resolve(p.model, empty=InvalidRequestError("model is required"))
        reason = await self._load_or_unload(resolved, p)
        return {"model": p.model, "created_at": utc_timestamp(), "message": dict(ASSISTANT_EMPTY),
                "done": True, "done_reason": reason}

    async def _load_or_unload(self, resolved: Any, p: GenerateParams | ChatParams) -> str:
        if p.is_unload:
            await self.scheduler.unload(resolved.model.digest)
            return "unload"
        options = self.options(resolved, p.options)
        async with self.scheduler.acquire(resolved, options.num_ctx, p.keep_alive):
            return "load"


def final_fields(done: Any, started_ns: int, load_duration_ns: int, *, context: bool = False) -> dict:
    """The last object's fields, in Ollama's order. Metrics are always present (even when 0)."""
    fields: dict[str, Any] = {"done": True, "done_reason": DONE_REASONS.get(done.done_reason, "stop")}
    if context:
        fields["context"] = list(done.context)
    fields.update(total_duration=time.monotonic_ns() - started_ns, load_duration=load_duration_ns,
                  prompt_eval_count=done.prompt_eval_count,
                  prompt_eval_duration=done.prompt_eval_duration_ns,
                  eval_count=done.eval_count, eval_duration=done.eval_duration_ns)
    return fields


def merge_generate(objects: list[dict]) -> dict:
    """``stream:false`` for generate: one object, ``response`` concatenated."""
    final = dict(objects[-1])
    final["response"] = "".join(o.get("response", "") for o in objects)
    return final


def merge_chat(objects: list[dict]) -> dict:
    """``stream:false`` for chat: one object, ``message.content`` concatenated."""
    final = dict(objects[-1])
    content = "".join(o["message"]["content"] for o in objects if "message" in o)
    final["message"] = {"role": "assistant", "content": content}
    return final
