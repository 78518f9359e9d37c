"""A ``GenerateRequest`` made ready for the token loop: its prompt as token ids (and image keys),
its sampler chain, its limits. Runs on a worker thread (it only reads the vocabulary and the
projector), so the inference thread never waits for tokenizing, image preprocessing or grammar
parsing, and a bad request fails before it is queued. Once queued, the sampler and the images
belong to the batch loop (``runner/batch_loop.py``), which alone uses and frees them."""

from __future__ import annotations

from runner.grammar import grammar_for
from runner.images import is_image
from runner.llama import Vocab
from runner.sampling import Sampler, SamplerConfig
from runner.settings import RunnerSettings
from runner.slots import Generation, Outbox
from runner.vision import MediaSet, Vision, tokenize_request
from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb

MAX_TOP_LOGPROBS = 20


def prepare_generation(request: pb.GenerateRequest, *, vocab: Vocab, vision: Vision | None,
                       settings: RunnerSettings, outbox: Outbox) -> Generation:
    """The generation ``request`` asks for; ``InvalidRequestError`` when it is unfit."""
    if settings.embedding:
        raise InvalidRequestError("this runner serves embeddings and cannot generate text")
    media = None
    try:
        prompt, media = prompt_tokens(request, vocab, vision, settings.ctx_size)
        sampler = Sampler(SamplerConfig.from_proto(request.sampling), vocab,
                          settings.ctx_size, grammar_for(request))
    except BaseException:
        if media is not None:
            media.free()
        raise
    num_predict = request.num_predict if request.HasField("num_predict") else -1
    return Generation(prompt, sampler, num_predict=num_predict, stops=list(request.stop),
                      outbox=outbox, logprobs=request.logprobs, media=media,
                      top_logprobs=min(max(request.top_logprobs, 0), MAX_TOP_LOGPROBS),
                      shift=request.shift if request.HasField("shift") else True,
                      num_keep=request.num_keep if request.HasField("num_keep") else 4)


def prompt_tokens(request: pb.GenerateRequest, vocab: Vocab, vision: Vision | None,
                  ctx_size: int) -> tuple[list[int], MediaSet | None]:
    """``context`` + the prompt's tokens (image keys where its images go), checked to fit."""
    context = list(request.context)
    tokens, media = tokenize_request(vocab, vision, request, add_special=not context)
    prompt = context + tokens
    try:
        if not prompt:
            raise InvalidRequestError("the prompt is empty")
        if len(prompt) >= ctx_size:
            raise InvalidRequestError(
                f"the prompt is {len(prompt)} tokens, which does not fit the context window "
                f"of {ctx_size} tokens")
        if is_image(prompt[-1]):
            raise InvalidRequestError("the prompt must not end with an image")
        vocab.detokenize(context)  # validates the ids
    except BaseException:
        if media is not None:
            media.free()
        raise
    return prompt, media
