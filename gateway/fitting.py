"""Making a prompt fit the context window, as Ollama does, and saying so when it had to.

Two steps, in Ollama's order:

1. ``fit_messages`` (chat, and generate's message form): render, count tokens, and while the
   prompt is too long drop the oldest messages — system messages and the last message always
   stay (``server/prompt.go`` ``chatPrompt``). Ollama tries one start after another (a render
   per message dropped); this binary-searches the first start that fits, so a long history
   costs a few renders, and a big history renders in a worker thread, off the event loop.
2. ``fit_tokens`` (every prompt): if it is still too long, keep the first ``num_keep`` tokens,
   drop the tokens after them so half of the rest of the window is free (the runner's shift),
   and send token ids instead of text. As in Ollama since 0.30.9 (``llm/llama_server.go``
   ``completionPromptForRequest``), that trim is a context shift, so with ``shift: false`` a
   prompt that still does not fit is a 400 (``PROMPT_TOO_LONG``); so is any too-long prompt with
   ``truncate: false``, which Ollama hands to llama-server untrimmed to be refused there.

Token counts come from the runner's tokenizer; a prompt whose UTF-8 length is well below the
window cannot exceed it (every token covers at least one byte), so short prompts cost no call.
Truncation is logged (``prompt_truncated``) with what was dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from gateway.prompt import Message
from services.errors import InvalidRequestError

log = structlog.get_logger()

Tokenize = Callable[[str, bool], Awaitable[list[int]]]  # (text, add_special) -> ids
TOO_LONG = "the input length exceeds the context length"  # embeddings (and Ollama's embed)
PROMPT_TOO_LONG = ("the prompt is longer than the context length currently available to the "
                   "model; shorten the prompt, adjust the context length in settings, or use a "
                   "model with a longer context length")
_SPECIAL_SLACK = 4  # BOS and a tokenizer's dummy-prefix space can add tokens beyond the bytes
# Rendering is pure Python: beyond this much history it goes to a worker thread (a thread hop
# costs more than rendering a short chat, which stays on the loop for time to first token).
HEAVY_MESSAGES = 64
HEAVY_CHARS = 256 * 1024


@dataclass
class Fitted:
    """The prompt to send: ``text`` (and ``context`` ids before it), or only ``context`` ids."""

    text: str
    context: list[int] = field(default_factory=list)
    dropped_messages: int = 0
    dropped_tokens: int = 0


def surely_fits(text: str, context: Sequence[int], limit: int) -> bool:
    """True when ``text`` cannot tokenize to more than ``limit`` tokens (no tokenizer call)."""
    return len(context) + len(text.encode("utf-8")) + _SPECIAL_SLACK <= limit


async def count(text: str, context: Sequence[int], tokenize: Tokenize, limit: int) -> int:
    """Token count of ``context`` + ``text``; a cheap lower bound when it surely fits."""
    if surely_fits(text, context, limit):
        return 0
    return len(context) + len(await tokenize(text, not context))


def is_heavy(messages: Sequence[Message]) -> bool:
    """Whether rendering ``messages`` is worth a worker thread."""
    if len(messages) > HEAVY_MESSAGES:
        return True
    return sum(len(m.get("content") or "") for m in messages) > HEAVY_CHARS


async def render_messages(render: Callable[[list[Message]], str], selected: list[Message],
                          heavy: bool) -> str:
    """``render(selected)``, in a worker thread when ``heavy``."""
    return await asyncio.to_thread(render, selected) if heavy else render(selected)


async def fit_messages(messages: Sequence[Message], render: Callable[[list[Message]], str],
                       tokenize: Tokenize, limit: int,
                       reserve: Callable[[list[Message]], int] | None = None) -> tuple[str, int]:
    """(prompt, messages dropped): the most recent messages whose rendering fits ``limit``;
    ``reserve(kept)`` is room the kept messages need beyond their text (images)."""
    messages = list(messages)
    heavy = is_heavy(messages)
    rendered: dict[int, tuple[str, int]] = {}

    async def attempt(start: int) -> tuple[str, int]:
        """The prompt from ``start`` on (system messages before it kept), and how many of the
        messages before ``start`` were system messages."""
        if start not in rendered:
            system = [m for m in messages[:start] if m.get("role") == "system"]
            text = await render_messages(render, system + messages[start:], heavy)
            rendered[start] = (text, len(system))
        return rendered[start]

    async def fits(start: int) -> bool:
        budget = limit - (reserve(messages[start:]) if reserve else 0)
        return await count((await attempt(start))[0], (), tokenize, budget) <= budget

    if len(messages) <= 1 or await fits(0):
        return (await attempt(0))[0], 0
    low, high = 1, len(messages) - 1  # the last message alone is always the answer
    while low < high:  # fewer messages never make a longer prompt: the first fit is found
        middle = (low + high) // 2
        if await fits(middle):
            high = middle
        else:
            low = middle + 1
    text, kept_system = await attempt(low)
    return text, low - kept_system


async def fit_tokens(text: str, context: Sequence[int], tokenize: Tokenize, *, limit: int,
                     num_keep: int, truncate: bool, shift: bool = True) -> Fitted:
    """Keep ``num_keep`` leading tokens (plus BOS) and the latest ones when over ``limit``;
    ``InvalidRequestError(PROMPT_TOO_LONG)`` instead unless both ``truncate`` and ``shift``."""
    if surely_fits(text, context, limit):
        return Fitted(text, list(context))
    tokens = list(context) + await tokenize(text, not context)
    if len(tokens) <= limit:
        return Fitted(text, list(context))
    if not (truncate and shift):
        raise InvalidRequestError(PROMPT_TOO_LONG)
    bos = 0 if context else len(await tokenize("", True))  # BOS (and EOS) the text got
    keep = max(0, min(num_keep + bos, limit - 1))
    tail = max(1, (limit - keep) // 2)
    return Fitted("", tokens[:keep] + tokens[-tail:], dropped_tokens=len(tokens) - keep - tail)


def log_truncation(model: str, fitted: Fitted, limit: int) -> None:
    if fitted.dropped_messages or fitted.dropped_tokens:
        log.warning("prompt_truncated", model=model, num_ctx=limit + 1,
                    dropped_messages=fitted.dropped_messages,
                    dropped_tokens=fitted.dropped_tokens)
