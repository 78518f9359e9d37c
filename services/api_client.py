"""A small blocking HTTP client of the gateway, for the CLI (which has no event loop to protect)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from services.settings import HostAddress


class ApiError(Exception):
    """The server answered with an error (its ``{"error": ...}`` message)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ServerUnreachableError(Exception):
    """Nothing answers at OLLAMA_HOST."""


class ApiClient:
    """Talks Ollama's REST API to the server at ``host``."""

    def __init__(self, host: HostAddress, timeout: float | None = None) -> None:
        self.host = host
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.host.scheme == "https" else http.client.HTTPConnection
        connect_host = "127.0.0.1" if self.host.host == "0.0.0.0" else self.host.host
        return cls(connect_host, self.host.port, timeout=self.timeout)

    def _send(self, method: str, path: str, body: Any = None) -> http.client.HTTPResponse:
        conn = self._connection()
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
        except (ConnectionError, OSError) as exc:
            raise ServerUnreachableError(
                f"could not connect to corral server at {self.host.url}: is it running? ({exc})"
            ) from exc
        if response.status >= 400:
            raise ApiError(_error_message(response.read(), response.status), response.status)
        return response

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request, one JSON answer (or None for an empty body)."""
        raw = self._send(method, path, body).read()
        return json.loads(raw) if raw.strip() else None

    def stream(self, path: str, body: Any) -> Iterator[dict]:
        """POST and yield each NDJSON object; an in-stream ``error`` raises ``ApiError``."""
        response = self._send("POST", path, body)
        for line in response:
            if not line.strip():
                continue
            obj = json.loads(line)
            if "error" in obj:
                raise ApiError(obj["error"])
            yield obj

    def is_running(self) -> bool:
        try:
            self._send("HEAD", "/").read()
            return True
        except (ServerUnreachableError, ApiError):
            return False


def _error_message(raw: bytes, status: int) -> str:
    try:
        return json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace").strip() or f"HTTP {status}"


def host_from_url(url: str) -> HostAddress:
    """A HostAddress from a full URL (used by tests and helpers)."""
    parts = urlsplit(url)
    return HostAddress(parts.scheme or "http", parts.hostname or "127.0.0.1", parts.port or 11434)
