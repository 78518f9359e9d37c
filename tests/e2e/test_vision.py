"""Vision end to end: the tiny vision model (``scripts/make-tiny-vlm.py``) through real processes.

``corral create`` takes its Modelfile's two FROMs (weights, then the ``clip`` projector); the
official ``ollama`` and ``openai`` clients send images; the runner loads the projector through
llama.cpp's mtmd. The model's answers are nonsense but greedy, so they must repeat for the same
image and change with the image. Tests run in file order: the last one pushes the model to
Debian's docker-registry, deletes it and pulls it back.
"""

from __future__ import annotations

import re
from pathlib import Path

import ollama
import openai
import pexpect
import pytest

from tests.e2e.server import CorralServer
from tests.e2e.cli_helpers import corral_cli
from tests.e2e.cli_helpers import PROMPT, say, spawn_repl
from tests.e2e.transfer_helpers import model_digest, transfer
from tests.polling import until
from tests.vlm import BLUE, IMAGE_TOKENS, RED, b64, image_bytes, make_tiny_vlm

pytestmark = pytest.mark.e2e

MODEL = "tiny-vlm:latest"
OPTIONS = {"temperature": 0, "seed": 1, "num_predict": 8}
QUESTION = "What is in this picture?"
PROJECTOR = "application/vnd.ollama.image.projector"


@pytest.fixture(scope="module")
def vlm(corral: CorralServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_tiny_vlm(tmp_path_factory.mktemp("vlm"))
    for name, color in (("red", RED), ("blue", BLUE), ("green", (20, 200, 40)),
                        ("yellow", (230, 220, 30)), ("purple", (120, 20, 160))):
        (folder / f"{name}.png").write_bytes(image_bytes(color))
    result = corral_cli("create", MODEL, "-f", str(folder / "Modelfile"), host=corral.url,
                        cwd=folder)
    assert result.returncode == 0, result.stderr
    yield folder
    corral.request("DELETE", "/api/delete", {"model": MODEL})


@pytest.fixture
def client(corral: CorralServer) -> ollama.Client:
    return ollama.Client(host=corral.url)


def test_two_froms_make_a_vision_model(corral: CorralServer, vlm: Path) -> None:
    status, shown = corral.post("/api/show", {"model": MODEL})
    assert status == 200, shown
    assert shown["capabilities"] == ["completion", "vision"]
    info = shown["projector_info"]
    assert info["general.architecture"] == "clip" and info["clip.projector_type"] == "mlp"
    assert info["clip.vision.image_size"] == 64 and info["general.parameter_count"] > 0
    assert len(re.findall(r"^FROM /", shown["modelfile"], re.MULTILINE)) == 2
    manifest = corral.get("/v2/library/tiny-vlm/manifests/latest")
    assert [layer["mediaType"] for layer in manifest["layers"]].count(PROJECTOR) == 1
    shown_cli = corral_cli("show", MODEL, host=corral.url)
    assert "vision" in shown_cli.stdout and "Projector" in shown_cli.stdout


def test_generate_with_images_from_the_ollama_client(client: ollama.Client, vlm: Path) -> None:
    text = client.generate(MODEL, QUESTION, options=OPTIONS, keep_alive=0)
    red = client.generate(MODEL, QUESTION, images=[str(vlm / "red.png")], options=OPTIONS,
                          keep_alive=0)
    # a fresh runner each time: nothing reused, so the count is the whole prompt
    assert red.prompt_eval_count == text.prompt_eval_count + IMAGE_TOKENS
    again = client.generate(MODEL, QUESTION, images=[(vlm / "red.png").read_bytes()],
                            options=OPTIONS)
    blue = client.generate(MODEL, QUESTION, images=[str(vlm / "blue.png")], options=OPTIONS)
    assert red.response and red.response == again.response
    assert blue.response != red.response
    assert red.eval_count == 8


def test_chat_with_images_and_a_second_turn_from_the_cache(corral: CorralServer,
                                                          client: ollama.Client,
                                                          vlm: Path) -> None:
    turn = {"role": "user", "content": "Describe it.", "images": [str(vlm / "purple.png")]}
    first = client.chat(MODEL, messages=[turn], options=OPTIONS)
    encoded = len(corral.log_events("image_encoded"))
    follow_up = [turn, {"role": "assistant", "content": first.message.content},
                 {"role": "user", "content": "And its colours?"}]
    second = client.chat(MODEL, messages=follow_up, options=OPTIONS)
    assert first.message.content and second.message.content
    assert first.prompt_eval_count > IMAGE_TOKENS
    assert len(corral.log_events("image_encoded")) == encoded  # not encoded again
    reused = until(lambda: [e for e in corral.log_events("generation_finished")
                               if e["prompt_eval_count"] == second.prompt_eval_count]
                      )[-1]["reused_tokens"]
    client.generate(MODEL, keep_alive=0)  # unload: a fresh runner evaluates everything
    fresh = client.chat(MODEL, messages=follow_up, options=OPTIONS)
    assert fresh.message.content == second.message.content
    # prompt_eval_count is the whole prompt (Ollama's); the runner logs what it reused: the
    # second turn skipped the first turn's prompt, image included (its KV cells were kept)
    assert second.prompt_eval_count == fresh.prompt_eval_count
    assert reused >= first.prompt_eval_count
    streamed = "".join(part.message.content for part in client.chat(
        MODEL, messages=[turn], options=OPTIONS, stream=True))
    assert streamed == first.message.content


def test_image_url_parts_from_the_openai_sdk(corral: CorralServer, vlm: Path) -> None:
    sdk = openai.OpenAI(base_url=f"{corral.url}/v1", api_key="unused")

    def ask(png: bytes, url: str | None = None):
        url = url or f"data:image/png;base64,{b64(png)}"
        parts = [{"type": "text", "text": QUESTION},
                 {"type": "image_url", "image_url": {"url": url}}]
        return sdk.chat.completions.create(model=MODEL, temperature=0, seed=1, max_tokens=8,
                                           messages=[{"role": "user", "content": parts}])

    red, again = ask(image_bytes(RED)), ask(image_bytes(RED))
    blue = ask(image_bytes(BLUE))
    assert red.choices[0].message.content == again.choices[0].message.content
    assert blue.choices[0].message.content != red.choices[0].message.content
    assert red.usage.completion_tokens == 8
    with pytest.raises(openai.BadRequestError, match="image URLs are not currently supported"):
        ask(b"", url="https://example.com/cat.png")
    with pytest.raises(openai.BadRequestError, match="message 0: image 0 is not a PNG"):
        ask(b"GIF89a not really")

    red_url = f"data:image/png;base64,{b64(image_bytes(RED))}"
    response = sdk.responses.create(model=MODEL, temperature=0, max_output_tokens=8, input=[
        {"role": "user", "content": [{"type": "input_text", "text": QUESTION},
                                     {"type": "input_image", "image_url": red_url}]}])
    assert response.output_text and response.usage.output_tokens == 8


def test_bad_images_are_400_naming_the_message(corral: CorralServer, vlm: Path) -> None:
    png = image_bytes(RED)
    cases = [
        (b"plain text, no image", "message 1: image 0 is not a PNG, JPEG or WebP image"),
        (png[:len(png) // 2], "message 1: image 0 could not be decoded"),
        (image_bytes(RED, fmt="GIF"), "message 1: image 0 is not a PNG, JPEG or WebP image"),
    ]
    for data, expected in cases:
        status, body = corral.post("/api/chat", {"model": MODEL, "stream": False, "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": "This:", "images": [b64(data)]}]})
        assert status == 400 and body["error"].startswith(expected), body
    status, body = corral.post("/api/generate", {"model": MODEL, "prompt": "x",
                                                 "images": [b64(png), b64(png[:100])]})
    assert status == 400 and body["error"].startswith("image 1 could not be decoded"), body


def test_an_image_to_a_text_only_model_is_refused(corral: CorralServer, vlm: Path) -> None:
    status, body = corral.post("/api/chat", {"model": "smollm2:135m", "stream": False,
                                             "messages": [{"role": "user", "content": "Hi",
                                                           "images": [b64(image_bytes(RED))]}]})
    assert (status, body["error"]) == (
        400, "registry.ollama.ai/library/smollm2:135m does not support vision")


def test_corral_run_attaches_an_image_path(corral: CorralServer, vlm: Path) -> None:
    result = corral_cli("run", MODEL, "describe ./green.png", "--verbose", host=corral.url,
                        cwd=vlm)
    assert result.returncode == 0, result.stderr
    assert "Added image './green.png'" in result.stderr
    evaluated = int(re.search(r"prompt eval count:\s+(\d+)", result.stderr).group(1))
    assert evaluated > IMAGE_TOKENS  # the image went along (it was never seen before)
    # the Modelfile makes answers greedy: the same as the API's for that prompt and image
    status, body = corral.post("/api/generate", {"model": MODEL, "prompt": "describe",
                                                 "images": [b64((vlm / "green.png").read_bytes())],
                                                 "stream": False})
    assert status == 200 and result.stdout.strip() == body["response"].strip()


def test_the_repl_attaches_images_and_shows_vision(corral: CorralServer, vlm: Path,
                                                   tmp_path: Path) -> None:
    child = spawn_repl(corral, tmp_path, MODEL)
    try:
        say(child, "/?", "Use /path/to/file to include .jpg, .png or .webp images.")
        say(child, "/set parameter num_predict 4", "Set parameter 'num_predict' to '4'")
        path = vlm / "yellow.png"
        say(child, f"{path} what is it?", f"Added image '{path}'")
        child.expect_exact(PROMPT)
        say(child, "/show info", "vision")
        child.expect_exact("Projector")
        child.expect_exact(PROMPT)
        say(child, "/bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_push_and_pull_carry_the_projector(corral: CorralServer, vlm: Path,
                                           docker_registry: str) -> None:
    remote = f"{docker_registry}/corral/tiny-vlm:latest"
    red = {"model": remote, "prompt": QUESTION, "images": [b64(image_bytes(RED))],
           "stream": False, "options": OPTIONS}
    status, body, _ = corral.request("POST", "/api/copy", {"source": MODEL, "destination": remote})
    assert status == 200, body
    original = model_digest(corral, remote)
    status, before = corral.post("/api/generate", red)
    assert status == 200, before
    transfer(corral, "/api/push", remote)
    for name in (remote, MODEL):
        assert corral.request("DELETE", "/api/delete", {"model": name})[0] == 200
    pulled = transfer(corral, "/api/pull", remote)
    assert model_digest(corral, remote) == original
    assert len([line for line in pulled if "digest" in line and line.get("total")]) >= 3
    status, shown = corral.post("/api/show", {"model": remote})
    assert "vision" in shown["capabilities"] and shown["projector_info"]
    status, after = corral.post("/api/generate", red)
    assert status == 200 and after["response"] == before["response"]
    corral.request("DELETE", "/api/delete", {"model": remote})
