"""``/v1/embeddings``: OpenAI's request → native ``/api/embed`` params; the reply → an
``embedding`` list (floats, or base64 of little-endian float32 bytes)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from gateway.embeddings import EmbedParams
from gateway.openai.wire import with_extension_options
from services.errors import InvalidRequestError
from services.gocodec import typed_field
from services.json_types import JSONObject

STRUCT = "EmbedRequest"
_FORMATS = ("float", "base64")


@dataclass(frozen=True)
class EmbeddingRequest:
    params: EmbedParams
    encoding_format: str = "float"

    @classmethod
    def parse(cls, body: JSONObject) -> EmbeddingRequest:
        encoding = typed_field(body, STRUCT, "encoding_format", "string", default="")
        if encoding and encoding.lower() not in _FORMATS:
            raise InvalidRequestError(f"Invalid value for 'encoding_format' = {encoding}. "
                                      "Supported values: ['float', 'base64'].")
        raw = body.get("input")
        if raw == "":
            raw = [""]
        if raw is None or raw == []:
            raise InvalidRequestError("invalid input")
        native = {"model": typed_field(body, STRUCT, "model", "string", default=""), "input": raw,
                  "dimensions": typed_field(body, STRUCT, "dimensions", "int", default=0),
                  "options": with_extension_options(body, STRUCT, {})}
        return cls(params=EmbedParams.parse(native), encoding_format=(encoding or "float").lower())


def embedding_list(request: EmbeddingRequest, native: JSONObject) -> JSONObject:
    """OpenAI's ``list`` of ``embedding`` objects from a native ``EmbedResponse``."""
    data = [{"object": "embedding", "embedding": _encode(vector, request.encoding_format),
             "index": index} for index, vector in enumerate(native.get("embeddings") or [])]
    tokens = native.get("prompt_eval_count", 0)
    return {"object": "list", "data": data or None, "model": request.params.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
