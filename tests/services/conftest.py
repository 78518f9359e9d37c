"""Fixtures of the services tests: the scripted Ollama peer the CLI talks to."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.services.cli_peer import Peer, scripted_handler


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Peer]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, nothing piped
    state = Peer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), scripted_handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("CORRAL_NO_AUTOSTART", "1")
    yield state
    server.shutdown()
    server.server_close()
