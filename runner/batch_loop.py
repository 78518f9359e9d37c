"""The token loop: one inference thread, a continuous batch over slots, tokens out to asyncio.

Every step the thread takes new requests from its inbox, gives waiting requests the idle slot
whose KV cache shares the longest prefix with their prompt, puts one token for each generating
slot plus pending prompt chunks into one ``llama_batch``, calls ``llama_decode`` once, and samples
each slot whose logits came out.

``BatchLoop`` owns every llama handle: the model and its context, the batch, the projector, and
each request's sampler chain once the request is queued. It creates, uses and frees them on the
inference thread only; the event loop's side (``runner/engine.py``) reaches it through the inbox
alone. Two read-only views are shared, as llama-server shares them with its HTTP threads: the
vocabulary (tokenizing) and the projector's preprocessing (``Vision.prompt``).

A slot's context is ``ctx_size`` tokens. A prompt that does not fit is refused
(``InvalidRequestError``). A generation that fills the slot shifts it as Ollama does (keep
``num_keep`` tokens, drop half of the rest, move the tail down) and goes on; with ``shift``
off, or a model whose memory cannot shift, it ends with ``DONE_REASON_LENGTH``.
"""

from __future__ import annotations

import asyncio
import enum
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from runner.embedding import embed_all
from runner.images import is_image, reusable, text_tokens
from runner.llama import Batch, ContextConfig, Model, Vocab
from runner.logprobs import token_logprob
from runner.settings import RunnerSettings
from runner.slots import Generation, Outbox, Slot, pick_slot
from runner.steptimer import StepTimer, name_os_thread
from runner.vision import Vision
from services.errors import CorralError
from services.pb.corral.runner.v1 import runner_pb2 as pb

log = structlog.get_logger()


class _Stop(enum.Enum):
    """The inbox item that ends the loop."""

    STOP = enum.auto()


_STOP = _Stop.STOP


@dataclass(frozen=True)
class LoadedModel:
    """What the event loop may know of the loaded model: facts read once on the inference
    thread after the load, and the (read-only, thread-safe) vocabulary."""

    path: str
    vocab: Vocab
    n_ctx: int
    n_ctx_train: int
    n_threads: int
    n_batch: int
    kv_cache_type: str
    load_mode: str
    load_duration_ns: int


@dataclass(frozen=True)
class Job:
    """``fn(*args)`` to run on the inference thread between two steps; its result (or
    exception) settles ``future`` on ``loop``."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class BatchLoop:
    """The inference thread's state and body; see the module docstring for who owns what."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self.model: Model | None = None
        self.vision: Vision | None = None  # the projector, for a model that takes images
        self.loaded: LoadedModel | None = None  # set once the model is loaded
        self._batch: Batch | None = None
        self._inbox: queue.SimpleQueue[Generation | Job | _Stop] = queue.SimpleQueue()
        self._waiting: deque[Generation] = deque()
        self._slots = [Slot(seq) for seq in range(settings.parallel)]
        self._timer = StepTimer(settings.profile)

    @property
    def _model(self) -> Model:
        """The model, for the loop's own methods: they all run after ``_load`` set it."""
        assert self.model is not None, "the model is loaded before the loop runs"
        return self.model

    @property
    def _llama_batch(self) -> Batch:
        assert self._batch is not None, "the batch is made before the loop runs"
        return self._batch

    # -- hand-offs (any thread) ---------------------------------------------------------------

    def submit(self, item: Generation | Job) -> None:
        """Queue a generation, or a job to run between two steps."""
        self._inbox.put(item)

    def request_stop(self) -> None:
        """End the loop after the items already queued: requests in flight are cancelled."""
        self._inbox.put(_STOP)

    # -- lifecycle (inference thread) ---------------------------------------------------------

    def run(self, outbox: Outbox, loaded: asyncio.Future[None]) -> None:
        """The thread's body: load the model (settling ``loaded``), loop until stopped, free."""
        name_os_thread("inference")
        try:
            self._load()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting event loop to raise
            self._close()
            outbox.loop.call_soon_threadsafe(settle, loaded, exc)
            return
        outbox.loop.call_soon_threadsafe(settle, loaded, None)
        try:
            self._run(outbox)
        finally:
            self._close()

    def _load(self) -> None:
        s = self.settings
        started = time.perf_counter_ns()
        config = ContextConfig(n_ctx=s.n_ctx, n_seq=s.parallel, n_batch=s.n_batch,
                               n_threads=s.n_threads, embeddings=s.embedding, lora=s.lora,
                               use_mmap=s.use_mmap, use_mlock=s.use_mlock,
                               flash_attention=s.flash_attention, cache_type=s.cache_type)
        model = self.model = Model(s.model, config, on_progress=_log_progress)
        if s.projector:  # mtmd's library is loaded only here: text-only runners skip it
            self.vision = Vision(s.projector, model.handle, n_threads=s.n_threads,
                                 n_batch=s.n_batch, n_embd=model.n_embd_inp, quiet=not s.debug)
        self._batch = Batch(s.n_batch)
        self.loaded = LoadedModel(
            path=model.path, vocab=model.vocab, n_ctx=model.n_ctx, n_ctx_train=model.n_ctx_train,
            n_threads=model.n_threads, n_batch=model.n_batch, kv_cache_type=model.cache_type,
            load_mode=model.load_mode, load_duration_ns=time.perf_counter_ns() - started)

    def _close(self) -> None:
        if self.vision is not None:
            self.vision.close()
        if self._batch is not None:
            self._batch.free()
            self._batch = None
        if self.model is not None:
            self.model.close()

    # -- jobs (inference thread) --------------------------------------------------------------

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """One pooled vector per tokenized input (an ``--embedding`` runner's job)."""
        return embed_all(self._model, self._llama_batch, inputs)

    # -- the loop (inference thread) ----------------------------------------------------------

    def _run(self, outbox: Outbox) -> None:
        timer = self._timer
        while self._drain(block=not self._busy()):
            timer.start()
            self._admit()
            timer.lap("admit")
            self._step()
            outbox.flush()  # at most one wake-up of the event loop per interval
            timer.lap("flush")
            if timer.enabled and not self._busy():
                timer.report()
        for slot in self._slots:
            if slot.generation is not None:
                self._release(slot, pb.DONE_REASON_CANCELLED)
        while self._waiting:
            self._waiting.popleft().finish(pb.DONE_REASON_CANCELLED)
        outbox.flush(force=True)

    def _busy(self) -> bool:
        return bool(self._waiting) or any(not slot.idle for slot in self._slots)

    def _drain(self, *, block: bool) -> bool:
        """Take everything in the inbox; False once a stop was requested."""
        try:
            item = self._inbox.get() if block else self._inbox.get_nowait()
            while True:
                if item is _STOP:
                    return False
                self._accept(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True

    def _accept(self, item: Generation | Job) -> None:
        if isinstance(item, Generation):
            self._waiting.append(item)
            return
        try:
            result: Any = item.fn(*item.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting event loop to raise
            result = exc
        item.loop.call_soon_threadsafe(settle, item.future, result)

    def _admit(self) -> None:
        while self._waiting:
            generation = self._waiting[0]
            if generation.cancelled.is_set():
                self._waiting.popleft().finish(pb.DONE_REASON_CANCELLED)
                continue
            slot = pick_slot(self._slots, generation.prompt)
            if slot is None:
                return
            self._assign(slot, self._waiting.popleft())

    def _assign(self, slot: Slot, generation: Generation) -> None:
        """Reuse the slot's cached prefix; evaluate the rest (always the last prompt token)."""
        prompt = generation.prompt
        reused = reusable(slot.cache, prompt)
        self._model.forget(slot.seq, reused)
        del slot.cache[reused:]
        slot.todo = prompt[reused:]
        slot.generation = generation
        generation.stats.started_ns = time.perf_counter_ns()
        # The whole prompt, cached prefix included (Ollama's cache_n + prompt_n): clients track
        # usage and context fill with it. prompt_eval_duration stays the time actually spent.
        generation.stats.prompt_eval_count = len(prompt)
        generation.stats.reused_tokens = reused
        generation.sampler.prime(text_tokens(prompt))
        if self.settings.backend_sampling and not generation.logprobs:
            generation.sampler.attach(self._model.ctx, slot.seq)
        log.debug("slot_assigned", seq=slot.seq, prompt_tokens=len(prompt), reused_tokens=reused)

    def _step(self) -> None:
        """Fill one batch, decode it, sample every slot whose logits came out."""
        if self.vision is not None:
            self._evaluate_image(self.vision)
            self._timer.lap("image")
        batch = self._llama_batch
        batch.clear()
        sampling: list[Slot] = []
        involved: list[Slot] = []
        for slot in self._slots:
            generation = slot.generation
            if generation is None:
                continue
            if generation.cancelled.is_set():
                self._drop(slot)
            elif slot.next_token >= 0:
                slot.logits_index = batch.add(slot.next_token, len(slot.cache), slot.seq, True)
                slot.cache.append(slot.next_token)
                slot.next_token = -1
                sampling.append(slot)
                involved.append(slot)
        for slot in self._slots:
            generation = slot.generation
            if (slot.todo and batch.room and not is_image(slot.todo[0])
                    and generation is not None and not generation.cancelled.is_set()):
                if self._add_prompt_chunk(batch, slot):
                    sampling.append(slot)
                involved.append(slot)
        if batch.n == 0:
            return
        timer = self._timer
        timer.lap("batch")
        try:
            self._model.decode(batch)
        except CorralError as exc:
            self._fail(involved, exc)
            return
        timer.lap("decode")
        for slot in sampling:
            self._sample(slot)
            timer.lap("text")
        timer.step_done(len(sampling), len(involved))

    def _evaluate_image(self, vision: Vision) -> None:
        """At most one image step per engine step: encode an image (unless cached), or write
        an encoded one into its slot. The other streams stall for one of the two at a time."""
        slot = next((s for s in self._slots if s.todo and is_image(s.todo[0])), None)
        if slot is None:
            return
        generation = slot.generation
        if generation is None or generation.cancelled.is_set():
            return
        assert generation.media is not None, "a prompt has image keys only with its images"
        media = generation.media.by_key[slot.todo[0]]
        try:
            if vision.encode(media):
                return
            vision.evaluate(self._model.ctx, media, len(slot.cache), slot.seq)
        except CorralError as exc:
            self._fail([slot], exc)
            return
        del slot.todo[:media.n_tokens]
        slot.cache.extend(media.keys)

    def _add_prompt_chunk(self, batch: Batch, slot: Slot) -> bool:
        """Put as much of the slot's pending prompt text as fits (up to its next image);
        True when it was the last chunk."""
        room = min(batch.room, next((i for i, t in enumerate(slot.todo) if is_image(t)),
                                    len(slot.todo)))
        chunk = slot.todo[:room]
        del slot.todo[:len(chunk)]
        pos, seq, last = len(slot.cache), slot.seq, len(chunk) - 1
        done = not slot.todo
        for i, token in enumerate(chunk):
            index = batch.add(token, pos + i, seq, done and i == last)
        slot.cache.extend(chunk)
        if done:
            slot.logits_index = index
        return done

    def _sample(self, slot: Slot) -> None:
        """Sample one token for the slot and decide whether its generation goes on."""
        generation = slot.generation
        assert generation is not None, "only a slot in use is sampled"
        model = self._model
        stats = generation.stats
        if not stats.first_token_ns:
            stats.first_token_ns = time.perf_counter_ns()
        if generation.num_predict == 0:
            self._release(slot, pb.DONE_REASON_LENGTH)
            return
        token = generation.sampler.sample(model.ctx, slot.logits_index)
        self._timer.lap("sample")
        vocab = model.vocab
        if vocab.is_eog(token):
            self._release(slot, pb.DONE_REASON_STOP)
            return
        generation.output.append(token)
        stats.eval_count += 1
        logprob = (token_logprob(model.ctx, slot.logits_index, vocab.n_tokens, token,
                                 generation.top_logprobs, vocab.piece)
                   if generation.logprobs else None)
        text, stopped = generation.text.feed(vocab.piece(token))
        generation.emit(text, logprob)
        if stopped:
            self._release(slot, pb.DONE_REASON_STOP, flush=False)
        elif stats.eval_count == generation.num_predict or (
                self._slot_full(slot) and not slot.shift(model)):
            self._release(slot, pb.DONE_REASON_LENGTH)
        else:
            slot.next_token = token

    def _slot_full(self, slot: Slot) -> bool:
        return len(slot.cache) >= self.settings.ctx_size

    def _release(self, slot: Slot, reason: pb.DoneReason.ValueType, *,
                 flush: bool = True) -> None:
        """Finish the slot's generation; its KV cells stay for prefix reuse."""
        generation, slot.generation = slot.generation, None
        assert generation is not None, "only a slot in use is released"
        slot.next_token, slot.todo = -1, []
        generation.finish(reason, flush=flush)

    def _drop(self, slot: Slot) -> None:
        """A cancelled generation: free the slot and its KV cells."""
        self._forget(slot)
        self._release(slot, pb.DONE_REASON_CANCELLED, flush=False)

    def _fail(self, slots: list[Slot], exc: CorralError) -> None:
        log.error("decode_failed", error=exc.message, slots=[s.seq for s in slots])
        for slot in slots:
            generation, slot.generation = slot.generation, None
            slot.next_token, slot.todo = -1, []
            self._forget(slot)
            if generation is not None:  # always: only slots in use take part in a step
                generation.fail(exc)

    def _forget(self, slot: Slot) -> None:
        self._model.forget(slot.seq, 0)
        slot.cache.clear()


def _log_progress(progress: float) -> None:
    """Load progress on stderr: the gateway's stall timer restarts on every line."""
    log.info("model_load_progress", progress=round(progress, 2))


def settle(future: asyncio.Future[Any], result: Any) -> None:
    """Resolve ``future`` with ``result`` (raised if it is an exception), unless already done;
    call it on the future's event loop."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
