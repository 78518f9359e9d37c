"""The REPL's state machine, driven through a prompt-toolkit pipe against the scripted peer.

(The same session through a real pseudo-terminal and a real server is in tests/e2e.)
"""

from __future__ import annotations

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from services.api_client import ApiClient
from services.cli.repl import Repl
from services.cli.run import RunOptions
from services.settings import parse_ollama_host
from tests.services.cli_peer import Peer

CTRL_C, CTRL_D = "\x03", "\x04"


@pytest.fixture
def session(peer: Peer, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))

    def run(*keys: str, **opts) -> Repl:
        import os

        with create_pipe_input() as pipe:
            client = ApiClient(parse_ollama_host(os.environ["OLLAMA_HOST"]))
            repl = Repl(client, RunOptions(model="base", **opts), {"capabilities": ["completion"]},
                        input=pipe, output=DummyOutput())
            pipe.send_text("".join(keys))
            assert repl.run() == 0
        return repl
    return run


def test_multiline_system_and_chat_history(session, peer, capsys):
    repl = session('/set system """You are\r', 'a pirate."""\r', '"""first\r', 'line two"""\r',
                   "again\r", "/bye\r")
    out = capsys.readouterr().out
    assert "Set system message." in out and "Answer 1\n\n" in out and "Answer 2\n\n" in out
    chat = peer.bodies("/api/chat")
    assert chat[0]["messages"] == [{"role": "system", "content": "You are\na pirate."},
                                   {"role": "user", "content": "first\nline two"}]
    assert [m["role"] for m in chat[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert repl.opts.system == "You are\na pirate."


def test_ctrl_c_at_the_prompt_and_ctrl_d(session, capsys):
    session(CTRL_C, "half a line", CTRL_C, CTRL_D)
    assert capsys.readouterr().out.count("Use Ctrl + d or /bye to exit.") == 1


def test_set_commands(session, peer, capsys):
    repl = session("/set parameter temperature 0.5\r", "/set parameter stop a b\r",
                   "/set parameter nope 1\r", "/set format json\r", "/set format xml\r",
                   "/set nowordwrap\r", "/set verbose\r", "/set think high\r", "/set bogus\r",
                   "hi\r", "/bye\r")
    out = capsys.readouterr()
    for line in ("Set parameter 'temperature' to '0.5'", "Set parameter 'stop' to 'a, b'",
                 "Couldn't set parameter: \"unknown parameter 'nope'\"", "Set format to 'json' mode.",
                 "Invalid or missing format. For 'json' mode use '/set format json'",
                 "Set 'nowordwrap' mode.", "Set 'verbose' mode.", "Set 'think' mode to 'high'.",
                 "Unknown command '/set bogus'. Type /? for help"):
        assert line in out.out
    assert 'warning: model "base" does not support thinking output' in out.err
    request = peer.bodies("/api/chat")[-1]
    assert request["options"] == {"temperature": 0.5, "stop": ["a", "b"]}
    assert request["format"] == "json" and request["think"] == "high"
    assert not repl.opts.wordwrap


def test_save_sends_the_session_as_a_create_request(session, peer, capsys):
    session("/set system Be brief.\r", "/set parameter num_predict 9\r", "hello\r",
            "/save mine\r", "/save bad name\r", "/bye\r")
    assert "Created new model 'mine'" in capsys.readouterr().out
    assert peer.bodies("/api/create")[-1] == {
        "model": "mine", "from": "base", "system": "Be brief.", "parameters": {"num_predict": 9},
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
                     {"role": "assistant", "content": "Answer 1"}]}


def test_load_clear_show_and_help(session, peer, capsys):
    session("/set system Keep me.\r", "hi\r", "/clear\r", "/load ghost\r", "/load base\r",
            "/show template\r", "/show license\r", "/show bogus\r", "/?\r", "/? set\r", "/frob\r",
            "/bye\r")
    out = capsys.readouterr()
    for line in ("Cleared session context", "Loading model 'ghost'", "Couldn't find model 'ghost'",
                 "Loading model 'base'", "No prompt template was specified for this model.",
                 "No license was specified for this model.",
                 "Unknown command '/show bogus'. Type /? for help",
                 "Unknown command '/frob'. Type /? for help"):
        assert line in out.out
    assert 'Use """ to begin a multi-line message.' in out.err and "/set nothink" in out.err
    generate = peer.bodies("/api/generate")
    assert generate[-1] == {"model": "base"}  # /load loads the model with an empty request
