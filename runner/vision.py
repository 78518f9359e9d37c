"""A vision model's projector, through llama.cpp's multimodal library (mtmd).

``Vision`` wraps one ``mtmd_context`` over the loaded text model. ``prompt`` (any thread: it
only reads the context, as llama-server's HTTP threads do) turns a prompt with ``[img-N]``
markers and the request's images into token ids and image keys (``runner.images``) plus the
``Media`` behind each image: mtmd's image chunk, already preprocessed (resized, normalised)
for the projector. ``embeddings`` (inference thread) runs the vision encoder, or takes the
result from a small cache keyed by the image's content hash; ``decode`` writes the embeddings
into a sequence's KV cells with ``mtmd_helper_decode_image_chunk``, which also handles models
whose image tokens attend to each other non-causally (Gemma 3).

Images are decoded with Pillow, not mtmd's own helper: that helper falls back to audio and,
in builds with video support, to running ffmpeg on whatever bytes it was given.

The bindings are imported here only, so a runner without a projector never loads libmtmd.
"""

from __future__ import annotations

import ctypes
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from runner.images import Image, decode_image, image_keys, split_prompt
from services.errors import CorralError, InvalidRequestError

if TYPE_CHECKING:
    from llama_cpp import llama_context_p, llama_model_p

    from runner.llama import Vocab
    from services.pb.corral.runner.v1 import runner_pb2 as pb

log = structlog.get_logger()

EMBEDDING_CACHE_BYTES = 64 << 20
"""Encoded images kept for reuse; the most recent one is always kept."""


@dataclass
class Media:
    """One image of a prompt: mtmd's chunk (owned), its size in tokens and its identity."""

    chunk: int
    n_tokens: int
    digest: str
    keys: list[int]


@dataclass
class MediaSet:
    """The images of one request, by the key of their first position; ``free()`` once done."""

    by_key: dict[int, Media] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.by_key)

    def free(self) -> None:
        from llama_cpp import mtmd_cpp  # noqa: PLC0415 - loaded once a projector is

        for media in self.by_key.values():
            if media.chunk:
                mtmd_cpp.mtmd_input_chunk_free(media.chunk)
                media.chunk = 0
        self.by_key.clear()


class Vision:
    """The projector of a vision model; ``close()`` frees it."""

    def __init__(self, path: str, model: llama_model_p, *, n_threads: int, n_batch: int,
                 n_embd: int, quiet: bool) -> None:
        from llama_cpp import mtmd_cpp  # noqa: PLC0415 - see the module docstring

        self._mtmd = mtmd_cpp
        if quiet:
            from runner.llama import NO_LOG  # noqa: PLC0415

            mtmd_cpp.mtmd_helper_log_set(NO_LOG, None)
        params = mtmd_cpp.mtmd_context_params_default()
        params.n_threads = n_threads
        params.print_timings = False
        self.ctx = mtmd_cpp.mtmd_init_from_file(path.encode(), model, params)
        if not self.ctx:
            raise CorralError(f"failed to load projector {path}: it is not a projector for "
                              f"this model, or of a kind this llama.cpp does not support")
        self.path = path
        self.n_batch = n_batch
        self.n_embd = n_embd
        self._cache: OrderedDict[str, ctypes.Array[ctypes.c_float]] = OrderedDict()
        self._cache_bytes = 0
        try:
            if not mtmd_cpp.mtmd_support_vision(self.ctx):
                raise CorralError(f"projector {path} does not take images")
            if mtmd_cpp.mtmd_decode_use_mrope(self.ctx):
                # M-RoPE (Qwen2-VL and kin) gives an image fewer positions than tokens; the
                # slots assume one position per token.
                raise CorralError(f"projector {path} uses M-RoPE positions, which Corral "
                                  f"does not support yet")
        except BaseException:
            self.close()
            raise

    # -- any thread -------------------------------------------------------------------------

    def prompt(self, text: str, images: list[bytes], *, add_special: bool,
               parse_special: bool) -> tuple[list[int], MediaSet]:
        """Token ids and image keys for ``text``, and the images they stand for."""
        pieces = split_prompt(text, len(images))
        used = sorted({piece for piece in pieces if isinstance(piece, int)})
        decoded = {i: decode_image(images[i], i) for i in used}
        mtmd = self._mtmd
        keep_alive: list[object] = []  # what the C parts point into, until they are used
        bitmaps = {i: self._bitmap(image) for i, image in decoded.items()}
        chunks = mtmd.mtmd_input_chunks_init()
        media = MediaSet()
        try:
            parts = [self._part(piece, bitmaps, parse_special, keep_alive)
                     for piece in pieces if piece != ""]
            array = (ctypes.POINTER(mtmd.mtmd_input_part) * len(parts))(*parts)
            if mtmd.mtmd_tokenize_from_parts(self.ctx, chunks, array, len(parts), add_special):
                raise InvalidRequestError("the images could not be prepared for this model")
            return self._tokens(chunks, media), media
        except BaseException:
            media.free()
            raise
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps.values():
                mtmd.mtmd_bitmap_free(bitmap)

    def _bitmap(self, image: Image) -> int:
        data = (ctypes.c_uint8 * len(image.rgb)).from_buffer_copy(image.rgb)
        bitmap: int = self._mtmd.mtmd_bitmap_init(image.width, image.height, data)
        if not bitmap:
            raise CorralError("mtmd could not allocate an image")
        self._mtmd.mtmd_bitmap_set_id(bitmap, image.digest.encode())
        return bitmap

    def _part(self, piece: str | int, bitmaps: dict[int, int], parse_special: bool,
              keep_alive: list[object]) -> ctypes._Pointer[Any]:
        mtmd = self._mtmd
        if isinstance(piece, int):
            part = mtmd.mtmd_input_part(text=None, bitmap=bitmaps[piece])
        else:
            data = piece.encode("utf-8")
            text = mtmd.mtmd_input_text(text=data, text_len=len(data), add_special=False,
                                        parse_special=parse_special)
            keep_alive.append(text)
            part = mtmd.mtmd_input_part(text=ctypes.pointer(text), bitmap=None)
        keep_alive.append(part)
        return ctypes.pointer(part)

    def _tokens(self, chunks: int, media: MediaSet) -> list[int]:
        mtmd = self._mtmd
        tokens: list[int] = []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            kind = mtmd.mtmd_input_chunk_get_type(chunk)
            if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t(0)
                ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                tokens += ids[:n.value]
            elif kind == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
                digest = (mtmd.mtmd_input_chunk_get_id(chunk) or b"").decode()
                keys = image_keys(digest, n_tokens)
                if keys[0] not in media.by_key:  # an image named twice is kept once
                    media.by_key[keys[0]] = Media(mtmd.mtmd_input_chunk_copy(chunk), n_tokens,
                                                  digest, keys)
                tokens += keys
            else:
                raise InvalidRequestError("this model takes images only")
        return tokens

    # -- inference thread -------------------------------------------------------------------

    def encode(self, media: Media) -> bool:
        """Run the vision encoder unless the image's embeddings are cached; True if it ran."""
        if media.digest in self._cache:
            return False
        self.embeddings(media)
        return True

    def embeddings(self, media: Media) -> ctypes.Array[ctypes.c_float]:
        """The image's embeddings: from the cache, or encoded now (the expensive part)."""
        cached = self._cache.get(media.digest)
        if cached is not None:
            self._cache.move_to_end(media.digest)
            return cached
        started = time.perf_counter()
        if self._mtmd.mtmd_encode_chunk(self.ctx, media.chunk) != 0:
            raise CorralError("the projector failed to encode an image")
        size = media.n_tokens * self.n_embd
        values = (ctypes.c_float * size)()
        ctypes.memmove(values, self._mtmd.mtmd_get_output_embd(self.ctx), size * 4)
        log.info("image_encoded", digest=media.digest[:12], tokens=media.n_tokens,
                 encode_ms=round((time.perf_counter() - started) * 1e3, 1))
        self._remember(media.digest, values)
        return values

    def _remember(self, digest: str, values: ctypes.Array[ctypes.c_float]) -> None:
        self._cache[digest] = values
        self._cache_bytes += ctypes.sizeof(values)
        while self._cache_bytes > EMBEDDING_CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= ctypes.sizeof(old)

    def decode(self, lctx: llama_context_p, media: Media, values: ctypes.Array[ctypes.c_float], pos: int,
               seq: int) -> None:
        """Write the image's embeddings into sequence ``seq`` from position ``pos`` on."""
        new_pos = ctypes.c_int32(0)
        rc = self._mtmd.mtmd_helper_decode_image_chunk(
            self.ctx, lctx, media.chunk, values, pos, seq, self.n_batch, ctypes.byref(new_pos),
            self._mtmd.mtmd_helper_post_decode_callback(), None)
        if rc != 0:
            raise CorralError(f"decoding an image failed with status {rc}")

    def close(self) -> None:
        if self.ctx:
            self._mtmd.mtmd_free(self.ctx)
            self.ctx = None
        self._cache.clear()

    def evaluate(self, lctx: llama_context_p, media: Media, pos: int, seq: int) -> None:
        """Encode (or recall) the image and write it into ``seq`` from ``pos`` on."""
        self.decode(lctx, media, self.embeddings(media), pos, seq)


def tokenize_request(vocab: Vocab, vision: Vision | None, request: pb.GenerateRequest, *,
                     add_special: bool) -> tuple[list[int], MediaSet | None]:
    """A GenerateRequest's prompt as token ids; with images, also image keys and the images
    they stand for (the caller frees them)."""
    if not request.images:
        return vocab.tokenize(request.prompt, add_special=add_special,
                              parse_special=request.parse_special), None
    if vision is None:
        raise InvalidRequestError("this model does not support images")
    return vision.prompt(request.prompt, list(request.images), add_special=add_special,
                         parse_special=request.parse_special)
