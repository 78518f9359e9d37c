"""``/v1/completions``: OpenAI's legacy completion request → a native ``/api/generate`` body;
native objects → ``text_completion`` replies or chunks."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from gateway.openai.wire import (
    FINGERPRINT,
    TranslatedRequest,
    include_usage,
    openai_logprobs,
    refuse_logit_bias,
    sampling_options,
    usage,
    with_extension_options,
)
from services.gocodec import typed_field
from services.json_types import JSONObject

STRUCT = "CompletionRequest"
_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


@dataclass(frozen=True)
class CompletionRequest(TranslatedRequest):
    """``/v1/completions`` as a native generate body."""

    id: str = field(default_factory=lambda: f"cmpl-{random.randrange(999)}")

    @classmethod
    def parse(cls, body: JSONObject) -> CompletionRequest:
        stream = typed_field(body, STRUCT, "stream", "bool", default=False)
        refuse_logit_bias(body)
        options = sampling_options(body, STRUCT, completions=True)
        native: JSONObject = {
            "model": typed_field(body, STRUCT, "model", "string", default=""),
            "prompt": typed_field(body, STRUCT, "prompt", "string", default=""),
            "stream": stream, "options": with_extension_options(body, STRUCT, options)}
        if suffix := typed_field(body, STRUCT, "suffix", "string", default=""):
            native["suffix"] = suffix
        if (top := typed_field(body, STRUCT, "logprobs", "int", "*int", 0)) > 0:  # legacy: top-N
            native["logprobs"], native["top_logprobs"] = True, top
        return cls(native=native, stream=stream,
                   include_usage=stream and include_usage(body, STRUCT))


def _choice(native: JSONObject) -> JSONObject:
    choice: JSONObject = {"text": native.get("response", ""), "index": 0}
    if (logprobs := openai_logprobs(native)) is not None:
        choice["logprobs"] = logprobs
    return {**choice, "finish_reason": native.get("done_reason") or None}


def completion(request_id: str, native: JSONObject) -> JSONObject:
    """The ``stream:false`` reply from the merged native generate object."""
    return {"id": request_id, "object": "text_completion", "created": int(time.time()),
            "model": native.get("model", ""), "system_fingerprint": FINGERPRINT,
            "choices": [_choice(native)], "usage": usage(native)}


class CompletionChunks:
    """Native generate objects → ``text_completion`` chunks (Ollama's ``CompleteWriter``).

    With ``include_usage`` every chunk carries zero usage and one more chunk with no choices
    carries the real usage at the end.
    """

    def __init__(self, request: CompletionRequest) -> None:
        self.request = request
        self.created = int(time.time())

    async def stream(self, objects: AsyncGenerator[JSONObject, None]
                     ) -> AsyncGenerator[JSONObject, None]:
        """The chunks of every native object; closing this closes ``objects`` at once."""
        async with contextlib.aclosing(objects):
            async for native in objects:
                chunk = self._chunk(native, [_choice(native)])
                if self.request.include_usage:
                    chunk["usage"] = dict(_NO_USAGE)
                yield chunk
                if native.get("done") and self.request.include_usage:
                    yield {**chunk, "choices": [], "usage": usage(native)}

    def _chunk(self, native: JSONObject, choices: list[JSONObject]) -> JSONObject:
        # field order of Ollama's CompletionChunk: choices before model
        return {"id": self.request.id, "object": "text_completion", "created": self.created,
                "choices": choices, "model": native.get("model", ""),
                "system_fingerprint": FINGERPRINT}
