"""The CLI's requests, checked against a scripted HTTP peer speaking Ollama's documented shapes.

The end-to-end tests (tests/e2e/test_cli*.py) drive the real server; these pin down what the
client sends: blob uploads by digest, the /api/create JSON form, pull-before-run, ``rm``'s
unload-then-delete, and the one-line errors.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.cli import main


class Peer:
    """What the scripted server knows and what it was asked."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.models: set[str] = {"base:latest"}
        self.calls: list[tuple[str, str, object]] = []

    def paths(self, method: str) -> list[str]:
        return [p for m, p, _ in self.calls if m == method]

    def bodies(self, path: str) -> list:
        return [b for _, p, b in self.calls if p == path]


def _handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _json(self, status: int, obj: object = None) -> None:
            data = b"" if obj is None else json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, objects: list[dict]) -> None:
            data = b"".join(json.dumps(o).encode() + b"\n" for o in objects)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def do_HEAD(self) -> None:
            peer.calls.append(("HEAD", self.path, None))
            digest = self.path.removeprefix("/api/blobs/")
            self._json(404 if self.path.startswith("/api/blobs/") and digest not in peer.blobs else 200)

        def do_DELETE(self) -> None:
            body = json.loads(self._body())
            peer.calls.append(("DELETE", self.path, body))
            if f"{body['model']}:latest" in peer.models or body["model"] in peer.models:
                self._json(200)
            else:
                self._json(404, {"error": f"model '{body['model']}' not found"})

        def do_POST(self) -> None:
            raw = self._body()
            if self.path.startswith("/api/blobs/"):
                digest = self.path.removeprefix("/api/blobs/")
                peer.calls.append(("POST", self.path, len(raw)))
                assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
                peer.blobs[digest] = raw
                return self._json(201)
            body = json.loads(raw)
            peer.calls.append(("POST", self.path, body))
            getattr(self, "_" + self.path.removeprefix("/api/"))(body)

        def _known(self, name: str) -> bool:
            return name in peer.models or f"{name}:latest" in peer.models

        def _show(self, body: dict) -> None:
            if not self._known(body["model"]):
                return self._json(404, {"error": f"model '{body['model']}' not found"})
            self._json(200, {"modelfile": "FROM x\n", "details": {"parent_model": ""},
                             "model_info": {}, "capabilities": ["completion"]})

        def _create(self, body: dict) -> None:
            peer.models.add(body["model"])
            self._stream([{"status": "parsing GGUF"}, {"status": "writing manifest"},
                          {"status": "success"}])

        def _pull(self, body: dict) -> None:
            if body["model"].startswith("missing"):
                return self._stream([{"status": "pulling manifest"},
                                     {"error": "pull model manifest: file does not exist"}])
            peer.models.add(body["model"])
            layer = {"status": "pulling abc", "digest": "sha256:" + "ab" * 32, "total": 1000}
            self._stream([{"status": "pulling manifest"}, layer, {**layer, "completed": 500},
                          {**layer, "completed": 1000}, {"status": "verifying sha256 digest"},
                          {"status": "success"}])

        def _generate(self, body: dict) -> None:
            if not self._known(body["model"]):
                return self._json(404, {"error": f"model '{body['model']}' not found"})
            if not body.get("prompt"):
                return self._json(200, {"model": body["model"], "done": True,
                                        "done_reason": "unload" if body.get("keep_alive") == 0 else "load"})
            self._stream([{"response": "Hello"}, {"response": " there"},
                          {"response": "", "done": True, "eval_count": 2, "eval_duration": 1_000_000}])

        def _chat(self, body: dict) -> None:
            if not self._known(body["model"]):
                return self._json(404, {"error": f"model '{body['model']}' not found"})
            turn = sum(m["role"] == "user" for m in body["messages"])
            self._stream([{"message": {"role": "assistant", "content": f"Answer {turn}"}},
                          {"message": {"role": "assistant", "content": ""}, "done": True}])

        def _copy(self, body: dict) -> None:
            peer.models.add(body["destination"])
            self._json(200)

    return Handler


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Peer]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, nothing piped
    state = Peer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("CORRAL_NO_AUTOSTART", "1")
    yield state
    server.shutdown()
    server.server_close()


def test_create_uploads_missing_blobs_then_posts_the_json_form(peer, tmp_path, capsys):
    gguf = tmp_path / "weights" / "tiny.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + b"\0" * 5000)
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    (tmp_path / "Modelfile").write_text(
        'FROM ./weights/tiny.gguf\nSYSTEM """Be brief."""\nPARAMETER temperature 0.2\n'
        'PARAMETER stop "<a>"\nPARAMETER stop "<b>"\nLICENSE MIT\nMESSAGE user hi\n')
    assert main(["create", "mine", "-f", str(tmp_path / "Modelfile")]) == 0
    assert peer.paths("HEAD")[-1] == f"/api/blobs/{digest}"
    assert ("POST", f"/api/blobs/{digest}", 5004) in peer.calls
    request = peer.bodies("/api/create")[0]
    assert request == {"model": "mine", "files": {"tiny.gguf": digest}, "system": "Be brief.",
                       "license": ["MIT"], "parameters": {"temperature": 0.2, "stop": ["<a>", "<b>"]},
                       "messages": [{"role": "user", "content": "hi"}]}
    # Not a terminal: each status once, as a plain line.
    assert "gathering model components" in capsys.readouterr().err

    peer.calls.clear()
    assert main(["create", "again", "-f", str(tmp_path / "Modelfile"), "--quantize", "q8_0"]) == 0
    assert not [p for p in peer.paths("POST") if p.startswith("/api/blobs/")]  # server has it
    assert peer.bodies("/api/create")[0]["quantize"] == "q8_0"


def test_create_from_a_model_name_or_a_blob_digest(peer, tmp_path):
    (tmp_path / "Modelfile").write_text("FROM base\nTEMPLATE {{ .Prompt }}\n")
    assert main(["create", "derived", "-f", str(tmp_path / "Modelfile")]) == 0
    assert peer.bodies("/api/create")[-1] == {"model": "derived", "from": "base",
                                              "template": "{{ .Prompt }}"}
    digest = "sha256:" + "cd" * 32
    peer.blobs[digest] = b"GGUF"
    (tmp_path / "Modelfile").write_text(f"FROM {digest}\n")
    assert main(["create", "byblob", "-f", str(tmp_path / "Modelfile")]) == 0
    assert peer.bodies("/api/create")[-1] == {"model": "byblob", "files": {"model.gguf": digest}}


@pytest.mark.parametrize("text, error", [
    ("PARAMETER temperature 1\n", "Error: no FROM line"),
    ("FROM base\nPARAMETER nope 1\n", "Error: unknown parameter 'nope'"),
    ("FROM base\nBOGUS x\n", "Error: (line 2): command must be one of"),
])
def test_bad_modelfile_is_a_one_line_error(peer, tmp_path, capsys, text, error):
    (tmp_path / "Modelfile").write_text(text)
    assert main(["create", "x", "-f", str(tmp_path / "Modelfile")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(error) and err.count("\n") == 1
    assert not peer.bodies("/api/create")


def test_create_rejects_bad_names_and_missing_files(peer, tmp_path, capsys):
    assert main(["create", "bad name!"]) == 1
    assert capsys.readouterr().err == "Error: invalid model name: bad name!\n"
    assert main(["create", "x", "-f", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == "Error: specified Modelfile wasn't found\n"


def test_run_pulls_a_missing_model_then_answers(peer, capsys):
    assert main(["run", "newmodel", "hi", "--verbose"]) == 0
    assert [p for m, p, _ in peer.calls if m == "POST"] == [
        "/api/show", "/api/pull", "/api/show", "/api/generate"]
    captured = capsys.readouterr()
    assert captured.out == "Hello there\n\n"
    assert "pulling manifest" in captured.err and "pulling abababababab: 100% 1 KB" in captured.err
    assert "eval count:           2 token(s)" in captured.err


def test_run_sends_flags_as_ollama_does(peer, capsys):
    assert main(["run", "base", "hi", "--format", "json", "--keepalive", "90s", "--think=low"]) == 0
    body = peer.bodies("/api/generate")[-1]
    assert body == {"model": "base", "prompt": "hi", "format": "json", "keep_alive": "1m30s",
                    "think": "low"}
    assert main(["run", "base", "hi", "--keepalive", "5"]) == 1
    assert capsys.readouterr().err.endswith('Error: time: missing unit in duration "5"\n')


def test_run_of_an_unpullable_model_fails_in_one_line(peer, capsys):
    assert main(["run", "missing", "hi"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "Error: pull model manifest: file does not exist"


def test_stop_rm_cp(peer, capsys):
    assert main(["stop", "base"]) == 0
    assert peer.bodies("/api/generate")[-1] == {"model": "base", "keep_alive": 0}
    assert main(["stop", "ghost"]) == 1
    assert capsys.readouterr().err == 'Error: couldn\'t find model "ghost" to stop\n'
    assert main(["cp", "base", "copy"]) == 0
    assert main(["rm", "copy", "base"]) == 0
    assert capsys.readouterr().out == "copied 'base' to 'copy'\ndeleted 'copy'\ndeleted 'base'\n"
    assert main(["rm", "ghost"]) == 1
    assert capsys.readouterr().err == "Error: model 'ghost' not found\n"


def test_show_flags(peer, capsys):
    assert main(["show", "base", "--modelfile"]) == 0
    assert capsys.readouterr().out == "FROM x\n\n"
    assert main(["show", "base", "--license", "--system"]) == 1
    assert capsys.readouterr().err == ("Error: only one of '--license', '--modelfile', '--parameters', "
                                       "'--system', or '--template' can be specified\n")


def test_unreachable_server_without_autostart(monkeypatch, capsys, tmp_path: Path):
    from tests.e2e.server import free_port

    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("CORRAL_NO_AUTOSTART", "1")
    assert main(["list"]) == 1
    assert capsys.readouterr().err == ("Error: could not connect to corral server, "
                                       "run 'corral serve' to start it\n")
