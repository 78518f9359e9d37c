"""The HTTP probe counts a 401 (API keys on) as healthy, any other error as not."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.healthcheck import main


@pytest.mark.parametrize("status, healthy", [(200, True), (401, True), (403, False), (500, False)])
def test_http_probe(status: int, healthy: bool) -> None:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/version"
        assert main(["http", url]) == (0 if healthy else 1)
    finally:
        server.shutdown()
        server.server_close()
