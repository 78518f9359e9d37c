"""Pull and push through real processes: Debian's docker-registry and a second Corral.

One Corral (A) ships smollm2:135m. A second, empty Corral (B) pulls it from A's /v2/. A pushes it
under a new name to a real Distribution registry, deletes it locally (blobs pruned), pulls it
back, and generates exactly what it generated before.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.e2e import peers
from tests.e2e.server import CorralServer
from tests.e2e.transfer_helpers import model_digest, start_empty, transfer

pytestmark = pytest.mark.e2e

OPTIONS = {"temperature": 0, "seed": 7, "num_predict": 8, "num_ctx": 512}
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


def generate(server: CorralServer, model: str) -> str:
    status, body = server.post("/api/generate", {
        "model": model, "prompt": "Name three colours.", "stream": False, "keep_alive": 0,
        "options": OPTIONS})
    assert status == 200, body
    return body["response"]


def test_corral_pulls_from_corral_and_round_trips_through_docker_registry(tmp_path, docker_registry):
    a = CorralServer(tmp_path / "a", tmp_path / "a.log").start()
    try:
        original = model_digest(a, "smollm2:135m")
        before = generate(a, "smollm2:135m")
        assert before

        b = start_empty(CorralServer(tmp_path / "b", tmp_path / "b.log", CORRAL_EMBEDDED_MODEL="0"))
        try:
            from_a = f"127.0.0.1:{a.port}/library/smollm2:135m"
            lines = transfer(b, "/api/pull", from_a)
            assert lines[0] == {"status": "pulling manifest"}
            assert any(line["status"].startswith("pulling ") and line.get("completed") == line.get("total")
                       for line in lines if "digest" in line)
            assert model_digest(b, from_a) == original
            assert generate(b, from_a) == before
        finally:
            b.stop()

        remote = f"{docker_registry}/corral/smollm2-roundtrip:135m"
        status, body, _ = a.request("POST", "/api/copy", {"source": "smollm2:135m",
                                                          "destination": remote})
        assert status == 200, body
        pushed = transfer(a, "/api/push", remote)
        assert pushed[0] == {"status": "retrieving manifest"}
        assert pushed[-2] == {"status": "pushing manifest"}
        assert {line["status"][:8] for line in pushed if "digest" in line} == {"pushing "}
        request = urllib.request.Request(
            f"http://{docker_registry}/v2/corral/smollm2-roundtrip/manifests/135m",
            headers={"Accept": SCHEMA2})
        with urllib.request.urlopen(request) as response:
            assert response.headers["Docker-Content-Digest"] == f"sha256:{original}"

        for name in (remote, "smollm2:135m"):
            status, body, _ = a.request("DELETE", "/api/delete", {"model": name})
            assert status == 200, body
        assert a.get("/api/tags")["models"] == []
        weights = json.loads(urllib.request.urlopen(request).read())["layers"][0]["digest"]
        assert not (tmp_path / "a" / "blobs" / weights.replace(":", "-")).exists()

        pulled = transfer(a, "/api/pull", remote)
        layer = [line for line in pulled if line.get("digest") == weights]
        assert layer[-1]["completed"] == layer[-1]["total"] > 90_000_000
        assert pulled[-3:-1] == [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}]
        assert model_digest(a, remote) == original
        assert generate(a, remote) == before
    finally:
        a.stop()


def test_create_from_a_model_that_is_not_local_pulls_it_first(tmp_path):
    """Ollama's ``/api/create`` pulls a missing ``from`` model (over HTTPS, as Ollama only
    does: a TLS docker-registry whose certificate both Corrals trust via SSL_CERT_FILE)."""
    cert, key = peers.self_signed_certificate(tmp_path)
    trust = {"SSL_CERT_FILE": str(cert)}
    with peers.docker_registry(tmp_path / "registry", tls=(cert, key)) as registry:
        base = f"{registry}/library/base:v1"
        a = CorralServer(tmp_path / "a", tmp_path / "a.log", **trust).start()
        try:
            status, body, _ = a.request("POST", "/api/copy", {"source": "smollm2:135m",
                                                              "destination": base})
            assert status == 200, body
            pushed = list(a.stream("/api/push", {"model": base}))
            assert pushed[-1] == {"status": "success"}, pushed
        finally:
            a.stop()
        b = start_empty(CorralServer(tmp_path / "b", tmp_path / "b.log",
                                     CORRAL_EMBEDDED_MODEL="0", **trust))
        try:
            lines = list(b.stream("/api/create", {"model": "derived", "from": base,
                                                  "system": "Pulled before it was built on."}))
            statuses = [line.get("status") for line in lines]
            assert statuses[0] == "pulling manifest" and statuses[-1] == "success", lines
            assert statuses.count("success") == 1
            assert {"derived:latest", base} <= {m["name"] for m in b.get("/api/tags")["models"]}
            status, shown = b.post("/api/show", {"model": "derived"})
            assert status == 200 and shown["system"] == "Pulled before it was built on."
            status, body = b.post("/api/create", {"model": "x", "from": f"{registry}/library/nope",
                                                  "stream": False})
            assert (status, body) == (404, {"error": f"model '{registry}/library/nope' not found"})
        finally:
            b.stop()
