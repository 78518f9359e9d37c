"""The engine's event-loop face: what the gRPC servicer (``runner/server.py``) and the
``GenerateStream`` session (``runner/mux.py``) call, all of it async or non-blocking.

``Engine`` starts the inference thread that runs ``BatchLoop`` (``runner/batch_loop.py``) and
talks to it only through its inbox: a prepared ``Generation``, or a ``Job`` whose result comes
back as a future. It never touches a llama handle itself; tokenizing and request preparation
read the vocabulary and the projector's preprocessing, which are safe from any thread, on
worker threads, so the event loop never blocks and the inference thread never waits for them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

from runner.batch_loop import BatchLoop, Job, LoadedModel
from runner.embedding import embedding_tokens
from runner.prepare import prepare_generation
from runner.settings import RunnerSettings
from runner.slots import Generation, Outbox, Route
from runner.vision import Vision
from services.errors import InvalidRequestError, RunnerUnavailableError
from services.pb.corral.runner.v1 import runner_pb2 as pb

_T = TypeVar("_T")
_Args = TypeVarTuple("_Args")


class Engine:
    """One loaded model behind async methods; ``start()`` loads it, ``stop()`` frees it."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self.batch_loop = BatchLoop(settings)
        self._thread: threading.Thread | None = None
        self._outbox: Outbox | None = None

    @property
    def vision(self) -> Vision | None:
        """The projector of a model that takes images (its preprocessing is thread-safe)."""
        return self.batch_loop.vision

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the inference thread and wait until it has loaded the model."""
        loop = asyncio.get_running_loop()
        loaded: asyncio.Future[None] = loop.create_future()
        self._outbox = Outbox(loop, self.settings.stream_interval_ms / 1000)
        self._thread = threading.Thread(target=self.batch_loop.run, args=(self._outbox, loaded),
                                        name="inference", daemon=True)
        self._thread.start()
        await loaded

    async def stop(self) -> None:
        """End requests in flight (``DONE_REASON_CANCELLED``), free llama resources, join."""
        if self._thread is None:
            return
        self.batch_loop.request_stop()
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    # -- requests -----------------------------------------------------------------------------

    async def generate(self, request: pb.GenerateRequest,
                       route: Route | None = None) -> Generation:
        """Validate and queue ``request``; read its output from ``Generation.stream()``, or
        have it delivered to ``route`` (``runner/mux.py``)."""
        prepared = asyncio.ensure_future(asyncio.to_thread(self.prepare, request))
        try:
            generation = await asyncio.shield(prepared)
        except asyncio.CancelledError:
            prepared.add_done_callback(self._discard)
            raise
        generation.route = route
        self.batch_loop.submit(generation)
        return generation

    def _discard(self, prepared: asyncio.Future[Generation]) -> None:
        """A generation prepared for a caller that left: the loop frees its sampler and images
        on the inference thread, as it frees every other one."""
        if not prepared.cancelled() and prepared.exception() is None:
            generation = prepared.result()
            generation.cancel()
            self.batch_loop.submit(generation)

    def prepare(self, request: pb.GenerateRequest) -> Generation:
        """Tokenize the prompt and build the sampler; raises ``InvalidRequestError`` when unfit."""
        vocab = self._ready().vocab
        assert self._outbox is not None, "start() makes the outbox before the model is ready"
        return prepare_generation(request, vocab=vocab, vision=self.vision,
                                  settings=self.settings, outbox=self._outbox)

    async def embed(self, request: pb.EmbedRequest) -> pb.EmbedResponse:
        """One unnormalised vector per input, computed on the inference thread."""
        vocab = self._ready().vocab
        if not self.settings.embedding:
            raise InvalidRequestError("this model does not support embeddings")
        limit = self.settings.ctx_size
        if request.HasField("num_ctx") and request.num_ctx > 0:
            limit = min(limit, request.num_ctx)  # a shared runner may have a larger context
        inputs = await asyncio.to_thread(embedding_tokens, vocab, list(request.inputs),
                                         request.truncate, limit)
        vectors = await self._call(self.batch_loop.embed, inputs)
        return pb.EmbedResponse(embeddings=[pb.Embedding(values=v) for v in vectors],
                                prompt_eval_count=sum(len(t) for t in inputs))

    async def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        vocab = self._ready().vocab
        return await asyncio.to_thread(vocab.tokenize, text, add_special=add_special,
                                       parse_special=parse_special)

    async def detokenize(self, tokens: list[int]) -> str:
        return await asyncio.to_thread(self._ready().vocab.detokenize, tokens)

    def info(self) -> pb.InfoResponse:
        model = self._ready()
        return pb.InfoResponse(
            model_path=model.path, n_ctx=model.n_ctx, n_ctx_per_slot=self.settings.ctx_size,
            n_parallel=self.settings.parallel, n_ctx_train=model.n_ctx_train,
            load_duration_ns=model.load_duration_ns, pid=os.getpid(), n_threads=model.n_threads,
            n_batch=model.n_batch, kv_cache_type=model.kv_cache_type, load_mode=model.load_mode,
            flash_attention=self.settings.flash_attention)

    def _ready(self) -> LoadedModel:
        loaded = self.batch_loop.loaded
        if loaded is None or self._thread is None:
            raise RunnerUnavailableError("the model is not loaded")
        return loaded

    async def _call(self, fn: Callable[[*_Args], _T], *args: *_Args) -> _T:
        """Run ``fn(*args)`` on the inference thread between two steps."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self.batch_loop.submit(Job(fn, args, loop, future))
        return await future
