"""Client of one runner process (gRPC over its unix socket)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from services.clients.base import (
    local_channel,
    metadata,
    translated_stream,
    translating,
)
from services.clients.runner_mux import GenerationMux
from services.grpc_server import wait_for_serving
from services.pb.corral.runner.v1 import runner_pb2 as pb
from services.pb.corral.runner.v1 import runner_pb2_grpc


class RunnerClient:
    """Typed access to a runner's RPCs; errors arrive as ``CorralError``."""

    PEER = "model runner"

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel = local_channel(target)
        self._stub = runner_pb2_grpc.RunnerStub(self._channel)
        self._mux = GenerationMux(self._stub, self.PEER)

    async def wait_ready(self, timeout: float) -> None:
        """Block until the runner's health says SERVING (model loaded)."""
        await wait_for_serving(self._channel, timeout=timeout)

    def generate(self, request: pb.GenerateRequest) -> AsyncGenerator[pb.GenerationEvent, None]:
        """Chunks then one ``done`` frame, over the runner's shared ``GenerateStream``
        (``runner_mux.py``); closing the iterator cancels the generation."""
        return self._mux.generate(request)

    def generate_call(self, request: pb.GenerateRequest) -> AsyncIterator[pb.GenerateResponse]:
        """The same through a ``Generate`` call of its own (one gRPC message per chunk)."""
        return translated_stream(self._stub.Generate(request, metadata=metadata()), self.PEER)

    @translating
    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        return await self._stub.Embed(request, metadata=metadata())

    @translating
    async def tokenize(self, text: str, *, add_special: bool = False,
                       parse_special: bool = True) -> list[int]:
        reply = await self._stub.Tokenize(
            pb.TokenizeRequest(text=text, add_special=add_special, parse_special=parse_special),
            metadata=metadata())
        return list(reply.tokens)

    @translating
    async def detokenize(self, tokens: list[int]) -> str:
        reply = await self._stub.Detokenize(pb.DetokenizeRequest(tokens=tokens), metadata=metadata())
        return reply.text

    @translating
    async def info(self) -> pb.InfoResponse:
        return await self._stub.Info(pb.InfoRequest(), metadata=metadata())

    async def close(self) -> None:
        await self._mux.close()
        await self._channel.close()
