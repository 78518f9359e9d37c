"""The caller's side of a runner's ``GenerateStream``: many generations over one gRPC stream.

``GenerationMux.generate(request)`` looks like the one-call-per-request ``Generate``: it yields
events with ``chunk`` or ``done`` and raises the taxonomy's error. Underneath, one long-lived
stream per runner carries every generation: starts and cancels go out through a queue, and one
reader task hands each incoming event to the generation it belongs to. A generation whose
consumer (an HTTP response) falls behind gets its waiting chunks merged into one, so a slow
client costs one growing string, not a queue of tiny messages.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

import grpc

from services.context import current_request_id
from services.errors import CorralError, RunnerUnavailableError, error_class_named, from_rpc_error
from services.mailbox import Mailbox
from services.pb.corral.runner.v1 import runner_pb2 as pb
from services.tracing import outgoing_generation

if TYPE_CHECKING:
    from services.pb.corral.runner.v1.runner_pb2_grpc import RunnerAsyncStub

_CLOSE = None  # ends the request stream
_Outgoing = asyncio.Queue[pb.GenerateStreamRequest | None]


_Event = pb.GenerationEvent | BaseException


def _merge_chunks(waiting: _Event, event: _Event) -> bool:
    """Fold a chunk into the chunk its consumer has not taken yet."""
    if not (isinstance(event, pb.GenerationEvent) and event.HasField("chunk")
            and isinstance(waiting, pb.GenerationEvent) and waiting.HasField("chunk")):
        return False
    waiting.chunk.text += event.chunk.text
    waiting.chunk.token_count += event.chunk.token_count
    waiting.chunk.logprobs.extend(event.chunk.logprobs)
    return True


class _Receiver:
    """One generation's events, waiting for its consumer."""

    __slots__ = ("_events", "ended")

    def __init__(self) -> None:
        self._events: Mailbox[_Event] = Mailbox(_merge_chunks)
        self.ended = False

    def put(self, event: _Event) -> None:
        self._events.put(event)

    async def events(self) -> AsyncIterator[pb.GenerationEvent]:
        while True:
            item = await self._events.get()
            if isinstance(item, BaseException):
                self.ended = True
                raise item
            if item.HasField("error"):
                self.ended = True
                cls = error_class_named(item.error.error_type) or CorralError
                raise cls(item.error.message)
            yield item
            if item.HasField("done"):
                self.ended = True
                return


class GenerationMux:
    """All generations to one runner over one ``GenerateStream`` call (opened on first use)."""

    def __init__(self, stub: RunnerAsyncStub, peer: str = "model runner") -> None:
        self._stub = stub
        self._peer = peer  # names the runner in errors gRPC itself reports
        self._ids = itertools.count(1)
        self._receivers: dict[int, _Receiver] = {}
        self._outgoing: _Outgoing | None = None
        self._reader: asyncio.Task[None] | None = None

    async def generate(self, request: pb.GenerateRequest) -> AsyncGenerator[pb.GenerationEvent, None]:
        """Events of one generation: chunks, then ``done``; closing early cancels it."""
        outgoing = self._open()
        gen_id, receiver = next(self._ids), _Receiver()
        self._receivers[gen_id] = receiver
        with outgoing_generation() as trace_context:
            outgoing.put_nowait(pb.GenerateStreamRequest(start=pb.StartGeneration(
                id=gen_id, request=request, request_id=current_request_id() or "",
                trace_context=trace_context)))
            try:
                async for event in receiver.events():
                    yield event
            finally:
                self._receivers.pop(gen_id, None)
                if not receiver.ended:
                    outgoing.put_nowait(pb.GenerateStreamRequest(cancel=gen_id))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None

    def _open(self) -> _Outgoing:
        """The open stream's request queue (opening one first if there is none)."""
        if self._outgoing is not None and self._reader is not None and not self._reader.done():
            return self._outgoing
        outgoing = self._outgoing = _Outgoing()
        call = self._stub.GenerateStream(_requests(outgoing))
        # an empty context: the stream outlives the request that happened to open it
        self._reader = asyncio.get_running_loop().create_task(
            self._read(call, outgoing), context=contextvars.Context())
        return outgoing

    async def _read(self, call: grpc.aio.StreamStreamCall[pb.GenerateStreamRequest,
                                                          pb.GenerateStreamResponse],
                    outgoing: _Outgoing) -> None:
        error: CorralError = RunnerUnavailableError("the runner closed the generation stream")
        try:
            async for response in call:
                for event in response.events:
                    if (receiver := self._receivers.get(event.id)) is not None:
                        receiver.put(event)
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc, self._peer)
        except asyncio.CancelledError:
            error = RunnerUnavailableError("the generation stream was closed")
            call.cancel()
            raise
        finally:
            outgoing.put_nowait(_CLOSE)
            if self._outgoing is outgoing:
                self._reader = None
            for receiver in list(self._receivers.values()):
                receiver.put(type(error)(error.message))


async def _requests(outgoing: _Outgoing) -> AsyncIterator[pb.GenerateStreamRequest]:
    while (message := await outgoing.get()) is not _CLOSE:
        yield message
