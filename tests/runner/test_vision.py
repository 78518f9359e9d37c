"""Images through the real engine: the tiny vision model, its projector loaded by mtmd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from runner.engine import Engine
from runner.llama import silence_llama_logs
from runner.settings import RunnerSettings
from services.errors import CorralError, InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb
from tests.runner.conftest import collect
from tests.vlm import BLUE, IMAGE_TOKENS, RED, image_bytes, make_tiny_vlm

PROMPT = "<|im_start|>user\n[img-0]What is in this picture?<|im_end|>\n<|im_start|>assistant\n"
TEXT_PROMPT = "<|im_start|>user\nWhat is in this picture?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_vlm(tmp_path_factory.mktemp("vlm"))


async def _engine(vlm: Path, *, projector: bool = True, parallel: int = 2) -> Engine:
    silence_llama_logs()
    engine = Engine(RunnerSettings(model=str(vlm / "model.gguf"), ctx_size=512,
                                   parallel=parallel, threads=2,
                                   projector=str(vlm / "mmproj.gguf") if projector else ""))
    await engine.start()
    return engine


@pytest.fixture
async def engine(vlm: Path) -> AsyncIterator[Engine]:
    engine = await _engine(vlm)
    yield engine
    await engine.stop()


def ask(prompt: str = PROMPT, *images: bytes, num_predict: int = 8,
        context: tuple[int, ...] = ()) -> pb.GenerateRequest:
    return pb.GenerateRequest(prompt=prompt, images=list(images), num_predict=num_predict,
                              parse_special=True, context=list(context),
                              sampling=pb.SamplingOptions(temperature=0.0))


async def test_same_image_same_answer_different_image_different_answer(engine: Engine) -> None:
    red, done = await collect(engine, ask(PROMPT, image_bytes(RED)))
    again, _ = await collect(engine, ask(PROMPT, image_bytes(RED)))
    blue, _ = await collect(engine, ask(PROMPT, image_bytes(BLUE)))
    assert red and red == again
    assert blue != red
    assert done.eval_count == 8


async def test_image_tokens_count_in_prompt_eval_and_stay_out_of_context(engine: Engine) -> None:
    _, with_image = await collect(engine, ask(PROMPT, image_bytes(BLUE, size=(64, 64))))
    text = await engine.tokenize(TEXT_PROMPT, add_special=True, parse_special=True)
    # the marker's own text is gone; the image's 16 positions are evaluated in its place
    assert with_image.prompt_eval_count == len(text) + IMAGE_TOKENS
    assert len(with_image.context) == with_image.prompt_eval_count - IMAGE_TOKENS + 8
    assert all(0 <= token for token in with_image.context)


async def test_text_only_prompts_are_unaffected_by_the_projector(engine: Engine,
                                                                 vlm: Path) -> None:
    with_projector, _ = await collect(engine, ask(TEXT_PROMPT))
    await engine.stop()
    plain = await _engine(vlm, projector=False)
    try:
        without, _ = await collect(plain, ask(TEXT_PROMPT))
        with pytest.raises(InvalidRequestError, match="does not support images"):
            await plain.generate(ask(PROMPT, image_bytes(RED)))
    finally:
        await plain.stop()
    assert with_projector == without


async def test_second_turn_reuses_the_encoded_image(engine: Engine) -> None:
    first_text, first = await collect(engine, ask(PROMPT, image_bytes(RED)))
    follow_up = PROMPT + first_text + "<|im_end|>\n<|im_start|>user\nAnd?<|im_end|>\n" \
        "<|im_start|>assistant\n"
    with structlog.testing.capture_logs() as logs:
        generation = await engine.generate(ask(follow_up, image_bytes(RED)))
        second = [r async for r in generation.stream()][-1].done
    assert first.prompt_eval_count > IMAGE_TOKENS
    # prompt_eval_count is the whole prompt (Ollama's); the image's KV cells were kept
    assert second.prompt_eval_count > first.prompt_eval_count
    assert generation.stats.reused_tokens >= first.prompt_eval_count
    assert not [e for e in logs if e["event"] == "image_encoded"]


async def test_an_encoded_image_is_cached_across_slots(engine: Engine) -> None:
    busy = await engine.generate(ask(TEXT_PROMPT, num_predict=200))  # holds slot 0's cache
    with structlog.testing.capture_logs() as logs:
        await collect(engine, ask("Look: [img-0] ok", image_bytes(RED)))
        await collect(engine, ask("Now: [img-0] fine", image_bytes(RED)))
    busy.cancel()
    assert len([e for e in logs if e["event"] == "image_encoded"]) == 1


async def test_several_images_in_one_prompt_follow_their_markers(engine: Engine) -> None:
    red, blue = image_bytes(RED), image_bytes(BLUE)
    one, done = await collect(engine, ask("A [img-0] then [img-1].", red, blue))
    swapped, _ = await collect(engine, ask("A [img-1] then [img-0].", red, blue))
    assert done.prompt_eval_count > 2 * IMAGE_TOKENS
    assert one != swapped


async def test_an_image_named_twice_is_evaluated_twice_and_encoded_once(engine: Engine) -> None:
    with structlog.testing.capture_logs() as logs:
        _, done = await collect(engine, ask("[img-0] and again [img-0] ok", image_bytes(BLUE)))
    assert done.prompt_eval_count > 2 * IMAGE_TOKENS
    assert len([e for e in logs if e["event"] == "image_encoded"]) == 1


async def test_text_streams_advance_between_the_images_of_another_request(
        engine: Engine) -> None:
    """One image step per engine step: a running stream gets tokens between an image's
    encode and its decode, and between images."""
    images = [image_bytes((i * 40, 255 - i * 40, 90)) for i in range(4)]
    prompt = "".join(f"[img-{i}]" for i in range(4)) + " describe"
    stream = await engine.generate(ask(TEXT_PROMPT, num_predict=400))
    reader = stream.stream()
    await anext(reader)  # the text stream is decoding
    with structlog.testing.capture_logs() as logs:
        counts = []
        original = engine.vision.encode

        def encode(media):
            counts.append(stream.stats.eval_count)
            return original(media)

        engine.vision.encode = encode  # called on every image step: encode, then decode
        await collect(engine, ask(prompt, *images))
    stream.cancel()
    await reader.aclose()
    assert len([e for e in logs if e["event"] == "image_encoded"]) == 4
    # 4 images × (encode step + decode step), and the text stream got tokens between them all
    assert len(counts) == 8 and counts == sorted(counts) and len(set(counts)) == 8


async def test_bad_images_are_the_requests_400(engine: Engine) -> None:
    png = image_bytes(RED)
    for data, message in ((b"not an image", "image 0 is not a PNG, JPEG or WebP image"),
                          (png[:len(png) // 2], "image 0 could not be decoded"),
                          (image_bytes(RED, fmt="GIF"), "image 0 is not a PNG")):
        with pytest.raises(InvalidRequestError, match=message):
            await engine.generate(ask(PROMPT, data))
    with pytest.raises(InvalidRequestError, match=r"image 1 is not referenced.*\[img-1\]"):
        await engine.generate(ask(PROMPT, png, png))
    with pytest.raises(InvalidRequestError, match="must not end with an image"):
        await engine.generate(ask("Look: [img-0]", png))
    _, done = await collect(engine, ask(PROMPT, png))  # still serving
    assert done.eval_count == 8


async def test_large_images_are_resized_by_the_projector(engine: Engine) -> None:
    big = image_bytes(RED, size=(1600, 1200), fmt="JPEG")
    _, done = await collect(engine, ask(PROMPT, big))
    text = await engine.tokenize(TEXT_PROMPT, add_special=True, parse_special=True)
    assert done.prompt_eval_count == len(text) + IMAGE_TOKENS
    answer, _ = await collect(engine, ask(PROMPT, image_bytes(RED, fmt="WEBP")))
    assert answer


async def test_a_projector_for_another_model_fails_the_load(vlm: Path, tmp_path: Path,
                                                            model_path: str) -> None:
    engine = Engine(RunnerSettings(model=model_path, ctx_size=256, threads=2,
                                   projector=str(vlm / "mmproj.gguf")))
    with pytest.raises(CorralError, match="not a projector for this model"):
        await engine.start()
    await asyncio.sleep(0)
