"""The inference service behind ``/api/generate`` and ``/api/chat``.

Each method resolves the model, checks what the request needs from it (tools, insert, thinking,
vision), merges options, holds a runner through the Scheduler, renders and fits the prompt,
streams the runner's text through the output parsers (thinking, tool calls) and yields Ollama's
wire objects. Errors raised before the first object surface as a proper HTTP status (see
``streaming.ndjson_stream``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.json_format import MessageToDict

from gateway import fitting
from gateway import prompt as prompts
from gateway.gotemplate.funcs import go_quote
from gateway.options import ModelOptions
from gateway.output import OutputParser, Piece
from gateway.prompt import PromptTemplate, Think
from gateway.scheduler import Scheduler
from gateway.schemas import ChatParams, GenerateParams
from gateway.streaming import utc_timestamp
from services.errors import CorralError, InvalidRequestError, ModelNotFoundError
from services.names import parse_name
from services.pb.corral.runner.v1 import runner_pb2 as pb

DONE_REASONS = {pb.DONE_REASON_STOP: "stop", pb.DONE_REASON_LENGTH: "length",
                pb.DONE_REASON_CANCELLED: "cancelled"}
ASSISTANT_EMPTY = {"role": "assistant", "content": ""}
RAW_CONFLICT = "raw mode does not support template, system, or context"


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
            merged = ModelOptions({**merged.values, "num_ctx": trained}, merged.explicit)
        return merged

    # -- generate -------------------------------------------------------------------------------

    async def _checked_generate(self, p: GenerateParams) -> tuple[Any, PromptTemplate, Think]:
        resolved = await self.resolve(p.model, empty=ModelNotFoundError("model '' not found"))
        if p.raw and (p.template or p.system or p.context):
            raise InvalidRequestError(RAW_CONFLICT)
        template = PromptTemplate.for_model(resolved)
        think = effective_think(p.think, template, p.model)
        check_capabilities(resolved, template, insert=bool(p.suffix), vision=bool(p.images))
        return resolved, template, think

    async def generate(self, p: GenerateParams) -> AsyncIterator[dict]:
        started = time.monotonic_ns()
        resolved, model_template, think = await self._checked_generate(p)
        template = PromptTemplate.for_model(resolved, p.template) if p.template else model_template
        options = self.options(resolved, p.options)
        async with self.scheduler.acquire(resolved, options.num_ctx, p.keep_alive,
                                          load=options.load_options()) as lease:
            fitted = await self._generate_prompt(p, resolved, template, think, lease, options)
            if p.debug_render_only:
                yield {"model": p.model, "created_at": utc_timestamp(), "response": "",
                       "done": False, "_debug_info": debug_info(fitted, len(p.images))}
                return
            parser = output_parser(model_template, think, fitted.text)
            request = options.generate_request(fitted.text, context=fitted.context,
                                               json_schema=p.format, logprobs=p.logprobs,
                                               top_logprobs=p.top_logprobs, shift=p.shift)
            def final(done: pb.Done) -> dict:
                return final_fields(done, started, lease.load_duration_ns, context=not p.raw)

            async for obj in _stream(lease, request, parser, p.model, _generate_piece, final):
                yield obj

    async def _generate_prompt(self, p: GenerateParams, resolved: Any, template: PromptTemplate,
                               think: Think, lease: Any, options: ModelOptions) -> fitting.Fitted:
        """Render (raw: as-is; suffix: FIM; else messages) and fit the window."""
        limit, tokenize = _window(lease, options)
        dropped = 0
        if p.raw:
            text = p.prompt
        elif p.suffix:
            text = template.render_suffix(p.prompt, p.suffix, think=think)
        else:
            messages = prompts.generate_messages(resolved, p.prompt, system=p.system,
                                                 with_history=not p.context, images=p.images)
            text, dropped = await self._fit_messages(template, messages, (), think, limit,
                                                     tokenize, p.truncate and not p.template)
        fitted = await fitting.fit_tokens(text, p.context, tokenize, limit=limit,
                                          num_keep=options.num_keep, truncate=p.truncate)
        fitted.dropped_messages = dropped
        fitting.log_truncation(p.model, fitted, limit)
        return fitted

    async def load_generate(self, p: GenerateParams) -> dict:
        """Empty prompt: load (``done_reason: load``) or, with keep_alive 0, unload."""
        if p.is_unload:
            resolved = await self.resolve(p.model, empty=ModelNotFoundError("model '' not found"))
            reason = await self._load_or_unload(resolved, p)
        else:
            resolved, _, _ = await self._checked_generate(p)
            reason = await self._load_or_unload(resolved, p)
        return {"model": p.model, "created_at": utc_timestamp(), "response": "", "done": True,
                "done_reason": reason}

    # -- chat -----------------------------------------------------------------------------------

    async def _checked_chat(self, p: ChatParams) -> tuple[Any, PromptTemplate, Think]:
        resolved = await self.resolve(p.model, empty=InvalidRequestError("model is required"))
        template = PromptTemplate.for_model(resolved)
        think = effective_think(p.think, template, p.model)
        check_capabilities(resolved, template, tools=bool(p.tools),
                           vision=any(m.get("images") for m in p.messages))
        return resolved, template, think

    async def chat(self, p: ChatParams) -> AsyncIterator[dict]:
        started = time.monotonic_ns()
        resolved, template, think = await self._checked_chat(p)
        options = self.options(resolved, p.options)
        messages = prompts.chat_messages(resolved, p.messages)
        async with self.scheduler.acquire(resolved, options.num_ctx, p.keep_alive,
                                          load=options.load_options()) as lease:
            limit, tokenize = _window(lease, options)
            text, dropped = await self._fit_messages(template, messages, p.tools, think, limit,
                                                     tokenize, p.truncate)
            fitted = await fitting.fit_tokens(text, (), tokenize, limit=limit,
                                              num_keep=options.num_keep, truncate=p.truncate)
            fitted.dropped_messages = dropped
            fitting.log_truncation(p.model, fitted, limit)
            if p.debug_render_only:
                yield {"model": p.model, "created_at": utc_timestamp(),
                       "message": {"role": "", "content": ""}, "done": False,
                       "_debug_info": debug_info(fitted, _image_count(p.messages))}
                return
            parser = output_parser(template, think, fitted.text, tools=p.tools)
            request = options.generate_request(fitted.text, context=fitted.context,
                                               json_schema=p.format, logprobs=p.logprobs,
                                               top_logprobs=p.top_logprobs, shift=p.shift)
            def final(done: pb.Done) -> dict:
                return final_fields(done, started, lease.load_duration_ns)

            async for obj in _stream(lease, request, parser, p.model,
                                     lambda piece: {"message": chat_message(piece)}, final):
                yield obj

    async def load_chat(self, p: ChatParams) -> dict:
        """No messages: load (``done_reason: load``) or, with keep_alive 0, unload."""
        if p.is_unload:
            resolved = await self.resolve(p.model, empty=InvalidRequestError("model is required"))
        else:
            resolved, _, _ = await self._checked_chat(p)
        reason = await self._load_or_unload(resolved, p)
        return {"model": p.model, "created_at": utc_timestamp(), "message": dict(ASSISTANT_EMPTY),
                "done": True, "done_reason": reason}

    # -- shared ---------------------------------------------------------------------------------

    @staticmethod
    async def _fit_messages(template: PromptTemplate, messages: list[dict], tools: list[dict],
                            think: Think, limit: int, tokenize: fitting.Tokenize,
                            truncate: bool) -> tuple[str, int]:
        def render(selected: list[dict]) -> str:
            return template.render(selected, tools=tools, think=think)

        if not truncate:
            return render(messages), 0
        return await fitting.fit_messages(messages, render, tokenize, limit)

    async def _load_or_unload(self, resolved: Any, p: GenerateParams | ChatParams) -> str:
        if p.is_unload:
            await self.scheduler.unload(resolved.model.digest)
            return "unload"
        options = self.options(resolved, p.options)
        await self.scheduler.load(resolved, options.num_ctx, p.keep_alive,
                                  load=options.load_options())
        return "load"



async def _stream(lease: Any, request: pb.GenerateRequest, parser: OutputParser, model: str,
                  shape: Callable[[Piece], dict],
                  final: Callable[[pb.Done], dict]) -> AsyncIterator[dict]:
    """The runner's text through ``parser`` as wire objects; the last one carries ``final``."""
    events = lease.generate(request)
    logprobs: list[dict] = []  # held until an object goes out (the parser may hold text back)
    async with contextlib.aclosing(events):  # a client gone cancels the runner
        async for event in events:
            if event.HasField("chunk"):
                logprobs += map(wire_logprob, event.chunk.logprobs)
                if piece := parser.feed(event.chunk.text):
                    yield _with_logprobs({"model": model, "created_at": utc_timestamp(),
                                          **shape(piece), "done": False}, logprobs)
                    logprobs = []
            else:
                yield _with_logprobs({"model": model, "created_at": utc_timestamp(),
                                      **shape(parser.finish()), **final(event.done)}, logprobs)


def _with_logprobs(obj: dict, logprobs: list[dict]) -> dict:
    """``logprobs`` goes last, as in Ollama's response structs, and only when there are some."""
    return {**obj, "logprobs": logprobs} if logprobs else obj


def wire_logprob(entry: pb.TokenLogprob) -> dict:
    """Ollama's ``api.Logprob``: token text, logprob, bytes, then the top alternatives."""
    obj = _token_logprob(entry)
    if entry.top:
        obj["top_logprobs"] = [_token_logprob(top) for top in entry.top]
    return obj


def _token_logprob(entry: pb.TokenLogprob) -> dict:
    return {"token": entry.piece.decode("utf-8", errors="replace"), "logprob": entry.logprob,
            "bytes": list(entry.piece)}

def _window(lease: Any, options: ModelOptions) -> tuple[int, fitting.Tokenize]:
    """The prompt token limit — the request's num_ctx, or the leased slot's if smaller, less
    one position to generate into (Ollama's ``optionsForPrompt``) — and a tokenizer counting
    exactly as the runner will."""
    loaded = getattr(lease.entry, "context_length", 0) or options.num_ctx
    per_slot = min(loaded, options.num_ctx)  # a bigger runner may serve a smaller num_ctx

    async def tokenize(text: str, add_special: bool) -> list[int]:
        return await lease.client.tokenize(text, add_special=add_special, parse_special=True)

    return max(1, per_slot - 1), tokenize


def effective_think(requested: Think, template: PromptTemplate, name: str) -> Think:
    """Thinking models think unless told not to; asking a non-thinking model to is a 400."""
    if template.supports_thinking:
        return requested if requested.is_set else Think(True)
    if requested.enabled:
        raise InvalidRequestError(f"{go_quote(name)} does not support thinking")
    return requested


def check_capabilities(resolved: Any, template: PromptTemplate, *, tools: bool = False,
                       insert: bool = False, vision: bool = False) -> None:
    """400 ``<full name> does not support tools|insert|vision`` (Ollama's scheduleRunner)."""
    missing = [name for name, wanted, present in (
        ("tools", tools, template.supports_tools), ("insert", insert, template.supports_insert),
        ("vision", vision, False)) if wanted and not present]
    if missing:
        full = parse_name(resolved.model.name).full
        raise InvalidRequestError(f"{full} does not support " + "\n".join(missing))


def output_parser(template: PromptTemplate, think: Think, prompt: str,
                  tools: list[dict] = ()) -> OutputParser:
    opening, closing = template.thinking_tags()
    tags = (opening, closing) if think.enabled and opening and closing else None
    prefilled = bool(tags) and prompt.rstrip().endswith(opening)
    return OutputParser(thinking_tags=tags, prefilled=prefilled,
                        tool_tag=template.tool_call_tag() if tools else "", tools=tools)


def chat_message(piece: Piece) -> dict:
    """``api.Message`` of the assistant: role, content, then thinking/tool_calls when present."""
    message: dict[str, Any] = {"role": "assistant", "content": piece.content}
    if piece.thinking:
        message["thinking"] = piece.thinking
    if piece.tool_calls:
        message["tool_calls"] = piece.tool_calls
    return message


def _generate_piece(piece: Piece) -> dict:
    return {"response": piece.content, **({"thinking": piece.thinking} if piece.thinking else {})}


def _image_count(messages: list[dict]) -> int:
    return sum(len(m.get("images") or []) for m in messages)


def debug_info(fitted: fitting.Fitted, images: int) -> dict:
    return {"rendered_template": fitted.text, "image_count": images}


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
    """``stream:false`` for generate: one object, ``response``/``thinking`` concatenated."""
    final = dict(objects[-1])
    final["response"] = "".join(o.get("response", "") for o in objects)
    thinking = "".join(o.get("thinking", "") for o in objects)
    final.pop("thinking", None)
    if thinking:
        final = _insert_after(final, "response", "thinking", thinking)
    return _merged_logprobs(final, objects)


def _merged_logprobs(final: dict, objects: list[dict]) -> dict:
    """Every object's ``logprobs``, concatenated into the last one (``stream:false``)."""
    final.pop("logprobs", None)
    return _with_logprobs(final, [lp for o in objects for lp in o.get("logprobs", ())])


def merge_chat(objects: list[dict]) -> dict:
    """``stream:false`` for chat: one object, content/thinking concatenated, tool calls kept."""
    final = dict(objects[-1])
    if "_debug_info" in final:
        return final
    messages = [o["message"] for o in objects if "message" in o]
    merged: dict[str, Any] = {"role": "assistant",
                              "content": "".join(m.get("content", "") for m in messages)}
    if thinking := "".join(m.get("thinking", "") for m in messages):
        merged["thinking"] = thinking
    if calls := [c for m in messages for c in m.get("tool_calls", ())]:
        merged["tool_calls"] = calls
    final["message"] = merged
    return _merged_logprobs(final, objects)


def _insert_after(obj: dict, after: str, key: str, value: Any) -> dict:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out
