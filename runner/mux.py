"""``GenerateStream``: every generation of one caller over a single gRPC stream.

The engine hands each step's output to the event loop in one callback (``Outbox``); here that
output goes into one ``GenerateStreamResponse`` for all the generations of the stream, instead
of one gRPC message per generation per token. While a message is being written, later output
waits, and a generation's chunks that wait are merged: a stream that falls behind the decoder
sends several tokens per event instead of queueing one message per token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog

from runner.engine import Engine
from runner.slots import Generation
from services.errors import CorralError
from services.pb.corral.runner.v1 import runner_pb2 as pb
from services.tracing import EndableSpan, incoming_generation

log = structlog.get_logger()


class Route:
    """Where one generation's output goes: its id on the session's stream."""

    __slots__ = ("session", "id")

    def __init__(self, session: Session, gen_id: int) -> None:
        self.session, self.id = session, gen_id

    def chunk(self, text: str, count: int, logprobs: list[pb.TokenLogprob]) -> None:
        self.session.chunk(self.id, text, count, logprobs)

    def end(self, item: pb.GenerateResponse | BaseException) -> None:
        self.session.end(self.id, item)


class Session:
    """One ``GenerateStream`` call: starts and cancels generations, batches their events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._live: dict[int, tuple[Generation, str]] = {}  # id -> (generation, request id)
        self._spans: dict[int, EndableSpan] = {}  # id -> its trace span, while tracing is on
        self._starting: dict[int, asyncio.Task[None]] = {}
        self._chunks: dict[int, list[Any]] = {}  # id -> [text, token count, logprobs] not yet sent
        self._ends: list[pb.GenerationEvent] = []
        self._ready = asyncio.Event()
        self._reading = True

    async def run(self, requests: AsyncIterator[pb.GenerateStreamRequest]
                  ) -> AsyncIterator[pb.GenerateStreamResponse]:
        """Responses until the caller stopped sending and every generation ended."""
        reader = asyncio.create_task(self._read(requests))
        try:
            while self._reading or self._live or self._starting or self._pending():
                await self._ready.wait()
                self._ready.clear()
                if self._pending():
                    yield self._take()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        finally:
            reader.cancel()
            for task in self._starting.values():
                task.cancel()
            for generation, request_id in self._live.values():
                generation.cancel()
            for span in self._spans.values():
                span.end()

    # -- requests --------------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[pb.GenerateStreamRequest]) -> None:
        try:
            async for message in requests:
                if message.HasField("start"):
                    start = message.start
                    self._starting[start.id] = asyncio.create_task(self._start(start))
                else:
                    self._cancel(message.cancel)
        finally:
            self._reading = False
            self._ready.set()

    async def _start(self, start: pb.StartGeneration) -> None:
        if start.request_id:
            structlog.contextvars.bind_contextvars(request_id=start.request_id)
        if (span := incoming_generation(start.trace_context, start.request_id)) is not None:
            self._spans[start.id] = span
        try:
            generation = await self.engine.generate(start.request, Route(self, start.id))
        except Exception as exc:  # every start gets an answer, or its caller would wait forever
            if not isinstance(exc, CorralError):
                log.exception("generation_start_failed")
                exc = CorralError(f"the runner could not start the generation: {exc}")
            self._ends.append(pb.GenerationEvent(id=start.id, error=pb.GenerationError(
                error_type=type(exc).__name__, message=exc.message)))
            self._end_span(start.id)
            self._ready.set()
            return
        except asyncio.CancelledError:
            self._end_span(start.id)
            raise
        finally:
            self._starting.pop(start.id, None)
        self._live[start.id] = (generation, start.request_id)

    def _cancel(self, gen_id: int) -> None:
        if (task := self._starting.get(gen_id)) is not None:
            task.cancel()  # still preparing: it never runs (the batch loop just frees it)
        elif (live := self._live.get(gen_id)) is not None:
            generation, request_id = live
            if not generation.finished:
                generation.cancel()
                log.info("generation_cancelled", eval_count=generation.stats.eval_count,
                         **_rid(request_id))

    # -- output (event loop, from the engine's Outbox) --------------------------------------

    def chunk(self, gen_id: int, text: str, count: int, logprobs: list[pb.TokenLogprob]) -> None:
        pending = self._chunks.get(gen_id)
        if pending is None:
            self._chunks[gen_id] = [text, count, list(logprobs)]
        else:  # not written yet: one event carries both
            pending[0] += text
            pending[1] += count
            pending[2] += logprobs
        self._ready.set()

    def end(self, gen_id: int, item: pb.GenerateResponse | BaseException) -> None:
        generation, request_id = self._live.pop(gen_id, (None, ""))
        if isinstance(item, CorralError):
            event = pb.GenerationEvent(id=gen_id, error=pb.GenerationError(
                error_type=type(item).__name__, message=item.message))
        elif isinstance(item, BaseException):
            event = pb.GenerationEvent(id=gen_id, error=pb.GenerationError(
                error_type="CorralError", message=str(item)))
        else:
            event = pb.GenerationEvent(id=gen_id, done=item.done)
            reused = generation.stats.reused_tokens if generation is not None else 0
            _log_finished(item.done, reused, request_id)
        self._ends.append(event)
        self._end_span(gen_id)
        self._ready.set()

    def _end_span(self, gen_id: int) -> None:
        if (span := self._spans.pop(gen_id, None)) is not None:
            span.end()

    def _pending(self) -> bool:
        return bool(self._chunks or self._ends)

    def _take(self) -> pb.GenerateStreamResponse:
        """Chunks first, then terminal events: per generation, text always precedes its end."""
        events = [pb.GenerationEvent(id=gen_id, chunk=pb.Chunk(text=text, token_count=count,
                                                               logprobs=logprobs))
                  for gen_id, (text, count, logprobs) in self._chunks.items()]
        events += self._ends
        self._chunks, self._ends = {}, []
        return pb.GenerateStreamResponse(events=events)


def _rid(request_id: str) -> dict[str, str]:
    return {"request_id": request_id} if request_id else {}


def _log_finished(done: pb.Done, reused_tokens: int, request_id: str) -> None:
    log.info("generation_finished", done_reason=pb.DoneReason.Name(done.done_reason),
             prompt_eval_count=done.prompt_eval_count, reused_tokens=reused_tokens,
             eval_count=done.eval_count,
             eval_ms=round(done.eval_duration_ns / 1e6, 1), **_rid(request_id))
