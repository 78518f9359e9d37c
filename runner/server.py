"""The gRPC face of the runner: each RPC parses its request, calls the engine once, replies.

Errors are raised as ``CorralError`` subclasses; the shared interceptor turns them into statuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import structlog

from runner.engine import Engine
from runner.mux import Session
from services.context import ServicerContext
from services.pb.corral.runner.v1 import runner_pb2 as pb
from services.pb.corral.runner.v1 import runner_pb2_grpc

log = structlog.get_logger()

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Runner"].full_name


class RunnerServicer(runner_pb2_grpc.RunnerServicer):
    """Bridges the ``corral.runner.v1.Runner`` RPCs to one ``Engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def Generate(self, request: pb.GenerateRequest,
                       context: ServicerContext) -> AsyncIterator[pb.GenerateResponse]:
        """Stream the engine's chunks and done frame; a vanished caller cancels the slot."""
        generation = await self.engine.generate(request)
        try:
            async for response in generation.stream():
                if response.HasField("done"):
                    _log_finished(response.done, generation.stats.reused_tokens)
                yield response
        except (asyncio.CancelledError, GeneratorExit):
            generation.cancel()
            log.info("generation_cancelled", eval_count=generation.stats.eval_count)
            raise
        finally:
            generation.cancel()  # no-op once finished; covers every other early exit

    async def GenerateStream(self, requests: AsyncIterator[pb.GenerateStreamRequest],
                             context: ServicerContext
                             ) -> AsyncIterator[pb.GenerateStreamResponse]:
        """Many generations over one stream, one message per engine step (``runner/mux.py``)."""
        async for response in Session(self.engine).run(requests):
            yield response

    async def Embed(self, request: pb.EmbedRequest,
                    context: ServicerContext) -> pb.EmbedResponse:
        return await self.engine.embed(request)

    async def Tokenize(self, request: pb.TokenizeRequest,
                       context: ServicerContext) -> pb.TokenizeResponse:
        tokens = await self.engine.tokenize(request.text, add_special=request.add_special,
                                            parse_special=request.parse_special)
        return pb.TokenizeResponse(tokens=tokens)

    async def Detokenize(self, request: pb.DetokenizeRequest,
                         context: ServicerContext) -> pb.DetokenizeResponse:
        return pb.DetokenizeResponse(text=await self.engine.detokenize(list(request.tokens)))

    async def Info(self, request: pb.InfoRequest,
                   context: ServicerContext) -> pb.InfoResponse:
        return self.engine.info()


def _log_finished(done: pb.Done, reused_tokens: int) -> None:
    log.info("generation_finished", done_reason=pb.DoneReason.Name(done.done_reason),
             prompt_eval_count=done.prompt_eval_count, reused_tokens=reused_tokens,
             eval_count=done.eval_count,
             eval_ms=round(done.eval_duration_ns / 1e6, 1))


def add_to_server(server: grpc.aio.Server, engine: Engine) -> None:
    """Register the runner service for ``engine`` on ``server``."""
    runner_pb2_grpc.add_RunnerServicer_to_server(RunnerServicer(engine), server)
