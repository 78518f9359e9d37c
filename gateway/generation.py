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
from collections.abc import AsyncGenerator, Callable, Sequence

from google.protobuf.json_format import MessageToDict

from gateway import fitting
from gateway import images as imaging
from gateway import prompt as prompts
from gateway.formats.base import StreamParser
from gateway.formats.chat_format import ChatFormat
from gateway.formats.forced import ToolChoice
from gateway.merging import merge_chat, merge_generate, with_logprobs  # noqa: F401 (re-export)
from gateway.blob_cache import BlobCache
from gateway.caps import RequestCaps
from gateway.leases import Lease
from gateway.model_ref import ModelRef
from gateway.options import ModelOptions
from gateway.output import Piece
from gateway.ports import ModelResolver
from gateway.prompt import Message, Think
from gateway.scheduler import Scheduler
from gateway.schemas import ChatParams, GenerateParams, InferenceParams
from gateway.streaming import utc_timestamp
from services.errors import CorralError, InvalidRequestError, ModelNotFoundError
from services.gocodec import go_quote
from services.json_types import JSONObject
from services.names import parse_name
from services.pb.corral.registry.v1 import registry_pb2 as rpb
from services.pb.corral.runner.v1 import runner_pb2 as pb

DONE_REASONS = {pb.DONE_REASON_STOP: "stop", pb.DONE_REASON_LENGTH: "length",
                pb.DONE_REASON_CANCELLED: "cancelled"}
ASSISTANT_EMPTY = {"role": "assistant", "content": ""}
RAW_CONFLICT = "raw mode does not support template, system, or context"
Resolved = rpb.ResolveModelResponse  # the registry's answer for a model name (templates and all)


class InferenceService:
    """Generate and chat over the registry (names → models) and the scheduler (→ runners)."""

    def __init__(self, registry: ModelResolver, scheduler: Scheduler, *, default_num_ctx: int,
                 caps: RequestCaps = RequestCaps(), blobs: BlobCache | None = None) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.default_num_ctx = default_num_ctx
        self.caps = caps
        self.blobs = blobs

    async def resolve(self, name: str, *, empty: CorralError) -> Resolved:
        """The registry's ResolveModelResponse for ``name``, its blobs local files (fetched into
        the gateway's cache when the registry's are out of reach); ``empty`` is raised for ``""``."""
        if not name:
            raise empty
        resolved = await self.registry.resolve(name)
        return await self.blobs.localize(resolved) if self.blobs is not None else resolved

    def options(self, resolved: Resolved, request_options: JSONObject) -> ModelOptions:
        """defaults < Modelfile PARAMETERs < request, within the server's caps (400 past one),
        num_ctx capped at the trained context."""
        parameters = MessageToDict(resolved.parameters) if resolved.HasField("parameters") else {}
        merged = ModelOptions.merge(parameters, request_options, num_ctx=self.default_num_ctx)
        merged = self.caps.apply(merged, request_options)
        trained = resolved.model.details.context_length
        if trained and merged.num_ctx > trained:
            merged = ModelOptions({**merged.values, "num_ctx": trained}, merged.explicit)
        return merged

    # -- generate -------------------------------------------------------------------------------

    async def _checked_generate(self, p: GenerateParams) -> tuple[Resolved, ChatFormat, Think]:
        resolved = await self.resolve(p.model, empty=ModelNotFoundError("model '' not found"))
        if p.raw and (p.template or p.system or p.context):
            raise InvalidRequestError(RAW_CONFLICT)
        template = ChatFormat.for_model(resolved)
        think = effective_think(p.think, template, p.model)
        check_capabilities(resolved, template, insert=bool(p.suffix), vision=bool(p.images))
        return resolved, template, think

    async def generate(self, p: GenerateParams) -> AsyncGenerator[JSONObject, None]:
        started = time.monotonic_ns()
        resolved, model_template, think = await self._checked_generate(p)
        template = ChatFormat.for_model(resolved, p.template) if p.template else model_template
        options = self.options(resolved, p.options)
        images = await imaging.decode_images([{"images": p.images}], chat=False)
        async with self.scheduler.acquire(ModelRef.of(resolved), options.num_ctx, p.keep_alive,
                                          load=options.load_options()) as lease:
            fitted = await self._generate_prompt(p, resolved, template, think, lease, options)
            if p.debug_render_only:
                yield {"model": p.model, "created_at": utc_timestamp(), "response": "",
                       "done": False, "_debug_info": debug_info(fitted, len(p.images))}
                return
            parser = model_template.parser(think, fitted.text, raw=p.raw)
            request = options.generate_request(fitted.text, context=fitted.context,
                                               json_schema=p.format, logprobs=p.logprobs,
                                               top_logprobs=p.top_logprobs, shift=p.shift)
            request.images.extend(images[image] for image in p.images)
            def final(done: pb.Done) -> JSONObject:
                return final_fields(done, started, lease.load_duration_ns, context=not p.raw)

            async for obj in _stream(lease, request, parser, p.model, _generate_piece, final):
                yield obj

    async def _generate_prompt(self, p: GenerateParams, resolved: Resolved,
                               template: ChatFormat, think: Think, lease: Lease,
                               options: ModelOptions) -> fitting.Fitted:
        """Render (raw: as-is; suffix: FIM; else messages) and fit the window."""
        limit, tokenize = _window(lease, options)
        dropped = 0
        if p.raw:
            text = imaging.prefix_markers(p.prompt, len(p.images))
        elif p.suffix:
            text = template.render_suffix(imaging.prefix_markers(p.prompt, len(p.images)),
                                          p.suffix, think=think)
        else:
            messages = prompts.generate_messages(resolved, p.prompt, system=p.system,
                                                 with_history=not p.context, images=p.images)
            text, dropped = await self._fit_messages(template, messages, (), think, limit,
                                                     tokenize, p.truncate and not p.template)
        if p.images:  # token ids would lose the image markers: the runner checks the window
            return fitting.Fitted(text, list(p.context), dropped_messages=dropped)
        fitted = await fitting.fit_tokens(text, p.context, tokenize, limit=limit,
                                          num_keep=options.num_keep, truncate=p.truncate,
                                          shift=p.shift)
        fitted.dropped_messages = dropped
        fitting.log_truncation(p.model, fitted, limit)
        return fitted

    async def load_generate(self, p: GenerateParams) -> JSONObject:
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

    async def _checked_chat(self, p: ChatParams, *, relax_thinking: bool = False
                            ) -> tuple[Resolved, ChatFormat, Think]:
        resolved = await self.resolve(p.model, empty=InvalidRequestError("model is required"))
        template = ChatFormat.for_model(resolved)
        think = effective_think(p.think, template, p.model, relax=relax_thinking)
        check_capabilities(resolved, template, tools=bool(p.tools),
                           vision=imaging.has_images(p.messages))
        return resolved, template, think

    async def chat(self, p: ChatParams, *, tool_choice: ToolChoice = ToolChoice(),
                   relax_thinking: bool = False) -> AsyncGenerator[JSONObject, None]:
        """``tool_choice`` and ``relax_thinking`` (think unset, not a 400, for a model that
        cannot think) serve the /v1 layers; the native API has neither."""
        started = time.monotonic_ns()
        resolved, template, think = await self._checked_chat(p, relax_thinking=relax_thinking)
        tools, think = forced_choice(tool_choice, p, think)
        options = self.options(resolved, p.options)
        images = await imaging.decode_images(p.messages, chat=True)
        messages = prompts.chat_messages(resolved, p.messages)
        async with self.scheduler.acquire(ModelRef.of(resolved), options.num_ctx, p.keep_alive,
                                          load=options.load_options()) as lease:
            limit, tokenize = _window(lease, options)
            kept: list[str] = []
            text, dropped = await self._fit_messages(template, messages, tools, think, limit,
                                                     tokenize, p.truncate, kept)
            fitted = fitting.Fitted(text) if kept else await fitting.fit_tokens(
                text, (), tokenize, limit=limit, num_keep=options.num_keep, truncate=p.truncate,
                shift=p.shift)
            fitted.dropped_messages = dropped
            fitting.log_truncation(p.model, fitted, limit)
            if p.debug_render_only:
                yield {"model": p.model, "created_at": utc_timestamp(),
                       "message": {"role": "", "content": ""}, "done": False,
                       "_debug_info": debug_info(fitted, _image_count(p.messages))}
                return
            parser = template.parser(think, fitted.text, tools=tools,
                                     last_message=messages[-1] if messages else None)
            request = options.generate_request(fitted.text, context=fitted.context,
                                               json_schema=p.format, logprobs=p.logprobs,
                                               top_logprobs=p.top_logprobs, shift=p.shift)
            if tool_choice.forces:
                call = template.forced_call(tools)
                request.grammar = call.grammar
                request.grammar_schemas.update(call.schemas)
            request.images.extend(images[image] for image in kept)
            def final(done: pb.Done) -> JSONObject:
                return final_fields(done, started, lease.load_duration_ns)

            async for obj in _stream(lease, request, parser, p.model,
                                     lambda piece: {"message": chat_message(piece)}, final):
                yield obj

    async def count_chat_tokens(self, p: ChatParams, *,
                                tool_choice: ToolChoice = ToolChoice()) -> int:
        """The tokens of the whole prompt ``p`` renders to, untruncated (Anthropic's
        ``count_tokens``, counted by the model's own tokenizer)."""
        resolved, template, think = await self._checked_chat(p, relax_thinking=True)
        tools, think = forced_choice(tool_choice, p, think)
        text = template.render(prompts.chat_messages(resolved, p.messages), tools=tools,
                               think=think)
        options = self.options(resolved, p.options)
        async with self.scheduler.acquire(ModelRef.of(resolved), options.num_ctx, p.keep_alive,
                                          load=options.load_options()) as lease:
            return len(await _window(lease, options)[1](text, True))

    async def load_chat(self, p: ChatParams) -> JSONObject:
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
    async def _fit_messages(template: ChatFormat, messages: list[Message],
                            tools: Sequence[JSONObject], think: Think, limit: int,
                            tokenize: fitting.Tokenize, truncate: bool,
                            kept: list[str] | None = None) -> tuple[str, int]:
        """The rendered prompt and how many messages were dropped; ``kept`` receives the
        images of the messages in the prompt returned (in marker order)."""
        images_of: dict[str, list[str]] = {}  # fitting renders several selections

        def render(selected: list[Message]) -> str:
            tagged, images = imaging.tag_images(selected)
            text = template.render(tagged, tools=tools, think=think)
            images_of[text] = images
            return text

        if not truncate:
            text, dropped = await fitting.render_messages(
                render, messages, fitting.is_heavy(messages)), 0
        else:
            fit = imaging.fit_messages if imaging.has_images(messages) else fitting.fit_messages
            text, dropped = await fit(messages, render, tokenize, limit)
        if kept is not None:
            kept[:] = images_of[text]
        return text, dropped

    async def _load_or_unload(self, resolved: Resolved, p: InferenceParams) -> str:
        if p.is_unload:
            await self.scheduler.unload(resolved.model.digest)
            return "unload"
        options = self.options(resolved, p.options)
        await self.scheduler.load(ModelRef.of(resolved), options.num_ctx, p.keep_alive,
                                  load=options.load_options())
        return "load"



async def _stream(lease: Lease, request: pb.GenerateRequest, parser: StreamParser, model: str,
                  shape: Callable[[Piece], JSONObject],
                  final: Callable[[pb.Done], JSONObject]) -> AsyncGenerator[JSONObject, None]:
    """The runner's text through ``parser`` as wire objects; the last one carries ``final``."""
    events = lease.generate(request)
    logprobs: list[JSONObject] = []  # held until an object goes out (the parser may hold text back)
    async with contextlib.aclosing(events):  # a client gone cancels the runner
        async for event in events:
            if event.HasField("chunk"):
                logprobs += map(wire_logprob, event.chunk.logprobs)
                if piece := parser.feed(event.chunk.text):
                    yield with_logprobs({"model": model, "created_at": utc_timestamp(),
                                          **shape(piece), "done": False}, logprobs)
                    logprobs = []
            else:
                yield with_logprobs({"model": model, "created_at": utc_timestamp(),
                                      **shape(parser.finish()), **final(event.done)}, logprobs)


def wire_logprob(entry: pb.TokenLogprob) -> JSONObject:
    """Ollama's ``api.Logprob``: token text, logprob, bytes, then the top alternatives."""
    obj = _token_logprob(entry)
    if entry.top:
        obj["top_logprobs"] = [_token_logprob(top) for top in entry.top]
    return obj


def _token_logprob(entry: pb.TokenLogprob) -> JSONObject:
    return {"token": entry.piece.decode("utf-8", errors="replace"), "logprob": entry.logprob,
            "bytes": list(entry.piece)}

def _window(lease: Lease, options: ModelOptions) -> tuple[int, fitting.Tokenize]:
    """The prompt token limit — the request's num_ctx, or the leased slot's if smaller, less
    one position to generate into (Ollama's ``optionsForPrompt``) — and a tokenizer counting
    exactly as the runner will."""
    loaded = lease.entry.context_length or options.num_ctx
    per_slot = min(loaded, options.num_ctx)  # a bigger runner may serve a smaller num_ctx

    async def tokenize(text: str, add_special: bool) -> list[int]:
        return await lease.client.tokenize(text, add_special=add_special, parse_special=True)

    return max(1, per_slot - 1), tokenize


def effective_think(requested: Think, template: ChatFormat, name: str, *,
                    relax: bool = False) -> Think:
    """Thinking models think unless told not to; asking a non-thinking model to is a 400
    (with ``relax``, as Ollama's Anthropic layer does for agents, the request is unset)."""
    if template.supports_thinking:
        return requested if requested.is_set else Think(True)
    if requested.enabled and relax:
        return Think()
    if requested.enabled:
        raise InvalidRequestError(f"{go_quote(name)} does not support thinking")
    return requested


def forced_choice(choice: ToolChoice, p: ChatParams,
                  think: Think) -> tuple[list[JSONObject], Think]:
    """The tools to offer and the think to use under ``choice``. A forced call is a grammar
    from the first token, so it cannot follow a thought or another format."""
    tools = choice.select(p.tools)
    if not choice.forces:
        return tools, think
    if not tools:
        raise InvalidRequestError("tool_choice forces a tool call but no tools were given")
    if p.format:
        raise InvalidRequestError("a forced tool_choice cannot be combined with format")
    if p.think.enabled and think.enabled:  # asked for, and the model would think
        raise InvalidRequestError("Thinking may not be enabled when tool_choice forces tool use.")
    return tools, Think(False) if think.enabled else think


def check_capabilities(resolved: Resolved, template: ChatFormat, *, tools: bool = False,
                       insert: bool = False, vision: bool = False) -> None:
    """400 ``<full name> does not support tools|insert|vision`` (Ollama's scheduleRunner)."""
    missing = [name for name, wanted, present in (
        ("tools", tools, template.supports_tools), ("insert", insert, template.supports_insert),
        ("vision", vision, bool(resolved.projector_paths))) if wanted and not present]
    if missing:
        full = parse_name(resolved.model.name).full
        raise InvalidRequestError(f"{full} does not support " + "\n".join(missing))


def chat_message(piece: Piece) -> JSONObject:
    """``api.Message`` of the assistant: role, content, then thinking/tool_calls when present."""
    message: JSONObject = {"role": "assistant", "content": piece.content}
    if piece.thinking:
        message["thinking"] = piece.thinking
    if piece.tool_calls:
        message["tool_calls"] = piece.tool_calls
    return message


def _generate_piece(piece: Piece) -> JSONObject:
    return {"response": piece.content, **({"thinking": piece.thinking} if piece.thinking else {})}


def _image_count(messages: list[Message]) -> int:
    return sum(len(m.get("images") or []) for m in messages)


def debug_info(fitted: fitting.Fitted, images: int) -> JSONObject:
    return {"rendered_template": fitted.text, "image_count": images}


def final_fields(done: pb.Done, started_ns: int, load_duration_ns: int, *,
                 context: bool = False) -> JSONObject:
    """The last object's fields, in Ollama's order. Metrics are always present (even when 0)."""
    fields: JSONObject = {"done": True, "done_reason": DONE_REASONS.get(done.done_reason, "stop")}
    if context:
        fields["context"] = list(done.context)
    fields.update(total_duration=time.monotonic_ns() - started_ns, load_duration=load_duration_ns,
                  prompt_eval_count=done.prompt_eval_count,
                  prompt_eval_duration=done.prompt_eval_duration_ns,
                  eval_count=done.eval_count, eval_duration=done.eval_duration_ns)
    return fields
