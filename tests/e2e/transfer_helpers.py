"""Pull, push and empty servers for the e2e transfer tests."""

from __future__ import annotations

from tests.e2e.server import CorralServer


def start_empty(server: CorralServer, timeout: float = 120.0) -> CorralServer:
    """Start a Corral with no models (``CorralServer.start`` waits for one to be listed)."""
    real_get = server.get

    def listed_once_up(path: str) -> dict:
        reply = real_get(path)
        return {"models": [True]} if path == "/api/tags" else reply

    server.get = listed_once_up
    try:
        server.start(timeout)
    finally:
        del server.get
    return server


def transfer(server: CorralServer, path: str, model: str) -> list[dict]:
    lines = list(server.stream(path, {"model": model, "insecure": True}, timeout=300))
    assert lines[-1] == {"status": "success"}, lines[-3:]
    return lines


def model_digest(server: CorralServer, name: str) -> str:
    return next(m["digest"] for m in server.get("/api/tags")["models"] if m["name"] == name)
