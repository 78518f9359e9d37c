"""The CLI's requests, checked against a scripted HTTP peer speaking Ollama's documented shapes.

The end-to-end tests (tests/e2e/test_cli*.py) drive the real server; these pin down what the
client sends: blob uploads by digest, the /api/create JSON form, pull-before-run, ``rm``'s
unload-then-delete, and the one-line errors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.cli import main


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
