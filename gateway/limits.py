"""How much a request may carry, per route, and reading a body within that.

Ollama sets no limits: a 1 GiB body is read whole, a 10^6-message chat renders on the request
path, and gRPC's 4 MiB message limit surfaced as "server busy". Corral's limits are explicit and
documented in the README:

* **Body size per route** (``BODY_LIMITS``): a body whose ``Content-Length`` is over the limit
  gets 413 before a byte of it is read; one without a length (chunked) gets 413 as soon as the
  limit is crossed. Blob uploads (``/api/blobs``, ``/v2/``) stream to the blob store, are
  verified by digest, and are not limited here.
* **Counts**: chat messages and embedding inputs per request (``MAX_CHAT_MESSAGES``,
  ``MAX_EMBED_INPUTS``), each refused with a 400 that names the limit.
* **gRPC**: every channel and server allows ``services.grpc_server.MAX_MESSAGE_BYTES`` (1 GiB),
  far above anything these limits let through, so gRPC's own limit never fires.
"""

from __future__ import annotations

from aiohttp import web

from services.errors import RequestTooLargeError

MiB = 1 << 20
# Inference bodies carry prompts, histories and base64 images: generous, but bounded.
INFERENCE_BODY_BYTES = 64 * MiB
# create carries a template, system prompt, licenses and messages (weights go as blobs).
CREATE_BODY_BYTES = 32 * MiB
# Everything else (show, copy, delete, pull, push) is a name and a few flags.
SMALL_BODY_BYTES = 1 * MiB

BODY_LIMITS: dict[str, int] = {
    "/api/generate": INFERENCE_BODY_BYTES,
    "/api/chat": INFERENCE_BODY_BYTES,
    "/api/embed": INFERENCE_BODY_BYTES,
    "/api/embeddings": INFERENCE_BODY_BYTES,
    "/v1/chat/completions": INFERENCE_BODY_BYTES,
    "/v1/completions": INFERENCE_BODY_BYTES,
    "/v1/embeddings": INFERENCE_BODY_BYTES,
    "/v1/responses": INFERENCE_BODY_BYTES,
    "/api/create": CREATE_BODY_BYTES,
}
LARGEST_BODY_BYTES = max(BODY_LIMITS.values())

# Rendering a history is pure Python work that holds the GIL; beyond this many messages a
# request is refused rather than allowed to slow every other client down.
MAX_CHAT_MESSAGES = 10_000
# OpenAI's own limit for one embeddings request; each input is embedded on its own.
MAX_EMBED_INPUTS = 2048


def body_limit(path: str) -> int:
    """The largest JSON body ``path`` accepts, in bytes."""
    return BODY_LIMITS.get(path, SMALL_BODY_BYTES)


def describe(size: int) -> str:
    return f"{size // MiB} MiB" if size % MiB == 0 else f"{size} bytes"


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The request body, refused with 413 when it is larger than ``limit`` (default: its route's
    limit): before it is read when ``Content-Length`` says so, else as soon as the bytes read
    cross the limit."""
    limit = body_limit(request.path) if limit is None else limit
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestTooLargeError(
            f"request body too large: Content-Length {declared} is over the "
            f"{describe(limit)} limit of {request.path}")
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise RequestTooLargeError(
                f"request body too large: over the {describe(limit)} limit of {request.path}")
    return bytes(body)


def too_many(what: str, count: int, limit: int) -> str:
    """The 400 message for a list longer than its limit."""
    return f"too many {what}: {count} (the limit is {limit} per request)"
