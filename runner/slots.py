"""Requests in flight (``Generation``) and the KV-cache sequences that serve them (``Slot``).

A ``Generation`` is shared by two threads with a strict split: the inference thread calls
``emit``/``finish``/``fail`` (their hand-offs to the event loop are gathered in the engine's
``Outbox`` and sent once per step), the event loop reads ``stream()`` and may call
``cancel()``. Chunks the reader has not taken yet are merged, so a slow reader costs one
growing string, not a queue of tiny items.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVarTuple

import structlog

from runner.images import text_tokens
from runner.sampling import Sampler
from runner.stops import TextStream
from services.mailbox import Mailbox
from services.pb.corral.runner.v1 import runner_pb2 as pb

if TYPE_CHECKING:
    from runner.llama import Model
    from runner.vision import MediaSet

log = structlog.get_logger()

_Args = TypeVarTuple("_Args")

# What a generation's reader has not taken yet: chunks as [text, token count, logprobs] (a list,
# so a later chunk merges into it in place), then the done frame or the error that ends it.
_Output: TypeAlias = list[Any] | pb.GenerateResponse | BaseException
# An event-loop callback the inference thread posted, with its arguments.
_Call: TypeAlias = tuple[Callable[..., object], tuple[Any, ...]]


class Route(Protocol):
    """Where a generation's output goes instead of ``stream()``: ``runner.mux.Route``, one
    generation on a ``GenerateStream``. Called on the event loop."""

    def chunk(self, text: str, count: int, logprobs: list[pb.TokenLogprob]) -> None: ...

    def end(self, item: pb.GenerateResponse | BaseException) -> None: ...


@dataclass
class Stats:
    """Counters and timestamps (``perf_counter_ns``) for one request's done frame."""

    prompt_eval_count: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV cells were already in the slot
    eval_count: int = 0
    started_ns: int = 0
    first_token_ns: int = 0
    finished_ns: int = 0


class Generation:
    """One Generate request: its prompt, sampler, limits and the stream back to the caller."""

    def __init__(self, prompt: list[int], sampler: Sampler, *, num_predict: int, stops: list[str],
                 outbox: Outbox, logprobs: bool = False,
                 top_logprobs: int = 0, shift: bool = True, num_keep: int = 4,
                 media: MediaSet | None = None) -> None:
        self.prompt = prompt
        self.media = media  # the images behind the prompt's image keys (runner.images)
        self.sampler = sampler
        self.num_predict = num_predict
        self.text = TextStream(stops)
        self.output: list[int] = []
        self.stats = Stats()
        self.cancelled = threading.Event()
        self.finished = False
        self._outbox = outbox
        self._outputs: Mailbox[_Output] = Mailbox(_merge_chunks)
        self._uncounted = 0
        self.logprobs = logprobs
        self.shift = shift
        self.num_keep = num_keep
        self.top_logprobs = top_logprobs
        self._unsent_logprobs: list[pb.TokenLogprob] = []
        self._text_sent = False
        self.route: Route | None = None  # set: output goes there (GenerateStream), not to stream()

    # -- inference thread ---------------------------------------------------------------------

    def emit(self, text: str, logprob: pb.TokenLogprob | None = None) -> None:
        """Send ``text`` covering the tokens generated since the last emit (and their
        log-probabilities, when asked for)."""
        self._uncounted += 1
        if logprob is not None:
            self._unsent_logprobs.append(logprob)
        if text:
            count, self._uncounted = self._uncounted, 0
            logprobs, self._unsent_logprobs = self._unsent_logprobs, []
            if not self._text_sent:  # the first text goes out at once: it is the TTFT
                self._text_sent = True
                self._outbox.urgent = True
            self._post(self._push_chunk, text, count, logprobs)

    def finish(self, reason: pb.DoneReason.ValueType, *, flush: bool = True) -> None:
        """Send held-back text (when ``flush``), then the done frame; releases the sampler."""
        self.stats.finished_ns = time.perf_counter_ns()
        tail = self.text.finish() if flush else ""
        if tail:
            self._post(self._push_chunk, tail, self._uncounted, self._unsent_logprobs)
        self._end(pb.GenerateResponse(done=self._done_frame(reason)))

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error`` raised to the reader."""
        self._end(error)

    def _end(self, item: pb.GenerateResponse | BaseException) -> None:
        self.finished = True
        self.sampler.free()
        if self.media is not None:
            self.media.free()
        self._outbox.urgent = True  # the caller is done: no reason to make it wait
        self._post(self._push, item)

    def _post(self, callback: Callable[[*_Args], object], *args: *_Args) -> None:
        self._outbox.post(callback, *args)

    def _done_frame(self, reason: pb.DoneReason.ValueType) -> pb.Done:
        s = self.stats
        first = s.first_token_ns or s.finished_ns
        return pb.Done(
            done_reason=reason, prompt_eval_count=s.prompt_eval_count,
            prompt_eval_duration_ns=max(first - s.started_ns, 0), eval_count=s.eval_count,
            eval_duration_ns=max(s.finished_ns - first, 0),
            context=text_tokens(self.prompt) + self.output)

    # -- event loop ---------------------------------------------------------------------------

    def _push_chunk(self, text: str, count: int, logprobs: list[pb.TokenLogprob]) -> None:
        if self.route is not None:
            self.route.chunk(text, count, logprobs)
            return
        self._outputs.put([text, count, logprobs])

    def _push(self, item: pb.GenerateResponse | BaseException) -> None:
        if self.route is not None:
            self.route.end(item)
            return
        self._outputs.put(item)

    async def stream(self) -> AsyncIterator[pb.GenerateResponse]:
        """Chunks, then exactly one done frame; a failure is raised instead of the done frame."""
        while True:
            item = await self._outputs.get()
            if isinstance(item, list):
                yield pb.GenerateResponse(chunk=pb.Chunk(text=item[0], token_count=item[1],
                                                         logprobs=item[2]))
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
                return

    def cancel(self) -> None:
        """Ask the inference thread to drop this request at its next step."""
        self.cancelled.set()


def _merge_chunks(waiting: object, item: object) -> bool:
    """Fold a ``[text, count, logprobs]`` chunk into the one ``stream()`` has not taken yet."""
    if not (isinstance(waiting, list) and isinstance(item, list)):
        return False
    waiting[0] += item[0]
    waiting[1] += item[1]
    waiting[2] += item[2]
    return True


class Outbox:
    """Event-loop callbacks from the inference thread: one hand-off per step (or per interval).

    Each hand-off (``call_soon_threadsafe``) wakes the event loop's thread. With ``interval``
    set, output waits for the next hand-off unless that long has passed since the last one or
    something is ``urgent`` (a generation's first text, for time to first token, or its end);
    waiting chunks are merged. Measured at 4 streams on 2 cores (``bench/profile.py``, two
    rounds each): 50 ms halved the CPU of everything after the runner (event loop 144 → 86,
    gateway 234 → 142, client 98 → 39 µs per token) yet lowered the aggregate rate 142 → 131
    t/s, because each step's llama_decode got 10 % slower: the woken loop thread now runs
    while ggml's threads decode (they wait for each other at every barrier), where a hand-off
    every step runs it in the gap between two decodes. Hence the default 0 (every step); the
    interval pays where ggml's threads leave cores free. Flushed between decodes, never during
    one (a relay thread that woke the loop during decodes cost 15 %).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.0) -> None:
        self.loop = loop
        self.interval = interval
        self.urgent = False
        self._calls: list[_Call] = []
        self._last = 0.0

    def post(self, callback: Callable[[*_Args], object], *args: *_Args) -> None:
        self._calls.append((callback, args))

    def flush(self, force: bool = False) -> None:
        """Hand the posted callbacks to the loop if it is time (or ``force``)."""
        if not self._calls:
            return
        now = time.monotonic()
        if not (force or self.urgent or now - self._last >= self.interval):
            return
        self._last, self.urgent = now, False
        calls, self._calls = self._calls, []
        try:
            self.loop.call_soon_threadsafe(_run_all, calls)
        except RuntimeError:  # the reader's loop is closed: nobody is left to read
            pass


def _run_all(calls: list[_Call]) -> None:
    for callback, args in calls:
        callback(*args)


@dataclass
class Slot:
    """One KV-cache sequence: the tokens its cells hold and the generation using it, if any."""

    seq: int
    cache: list[int] = field(default_factory=list)
    generation: Generation | None = None
    todo: list[int] = field(default_factory=list)
    next_token: int = -1
    logits_index: int = -1

    @property
    def idle(self) -> bool:
        return self.generation is None

    def shift(self, model: Model) -> bool:
        """Make room in this full slot (Ollama's ShiftContext): keep ``num_keep`` tokens (+BOS),
        drop half of the rest; False when the generation may not or the model cannot."""
        generation = self.generation
        assert generation is not None, "only a slot in use fills up"
        if not generation.shift or not model.can_shift:
            return False
        n = len(self.cache)
        keep = min(max(generation.num_keep, 0) + int(model.vocab.add_bos), n - 2)
        discard = (n - keep) // 2
        model.shift(self.seq, keep, discard, n)
        del self.cache[keep:keep + discard]
        log.debug("context_shifted", seq=self.seq, kept=keep, discarded=discard)
        return True

    def common_prefix(self, tokens: list[int]) -> int:
        """How many leading ``tokens`` this slot's cache already holds."""
        n = 0
        for a, b in zip(self.cache, tokens):
            if a != b:
                break
            n += 1
        return n


def pick_slot(slots: list[Slot], prompt: list[int]) -> Slot | None:
    """The idle slot sharing the longest prefix with ``prompt`` (ties: the first), or None."""
    best, best_len = None, -1
    for slot in slots:
        if slot.idle:
            n = slot.common_prefix(prompt)
            if n > best_len:
                best, best_len = slot, n
    return best
