"""A small blocking HTTP client of the gateway, for the CLI (which has no event loop to protect)."""

from __future__ import annotations

import http.client
from http import HTTPStatus
import json
import ssl
from collections.abc import Callable, Iterator
from typing import IO, Any

from services.settings import HostAddress

UPLOAD_CHUNK = 1 << 20


class ApiError(Exception):
    """The server answered with an error (its ``{"error": ...}`` message) and ``status``; 0 for
    an error line inside a stream, after the 200 went out (Ollama's contract sends no status)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def not_found(self) -> bool:
        """The model (or other thing named) does not exist: a 404."""
        return self.status == HTTPStatus.NOT_FOUND

    @property
    def bad_request(self) -> bool:
        """The server refused what was asked (a bad name, value or capability): a 400."""
        return self.status == HTTPStatus.BAD_REQUEST


class ServerUnreachableError(Exception):
    """Nothing answers at OLLAMA_HOST."""


class TlsError(ServerUnreachableError):
    """Something answers at an ``https://`` OLLAMA_HOST, but TLS failed (e.g. an untrusted
    certificate): a server is there, and no local one should be started in its place."""


class ApiClient:
    """Talks Ollama's REST API to the server at ``host`` (``https`` verifies the server's
    certificate against the system's CAs, or ``SSL_CERT_FILE``'s), sending ``api_key`` (the
    ``CORRAL_API_KEY``) as ``Authorization: Bearer``."""

    def __init__(self, host: HostAddress, timeout: float | None = None, *,
                 api_key: str = "") -> None:
        self.host = host
        self.timeout = timeout
        self._api_key = api_key

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.host.scheme == "https" else http.client.HTTPConnection
        connect_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host.host, self.host.host)
        return cls(connect_host, self.host.port, timeout=timeout if timeout is not None else self.timeout)

    def _send(self, method: str, path: str, body: Any = None, *, raw: Any = None,
              headers: dict[str, str] | None = None, timeout: float | None = None,
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connection(timeout)
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = dict(headers or {})
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
        except ssl.SSLError as exc:
            conn.close()
            hint = " (to trust a private CA or self-signed certificate, set SSL_CERT_FILE)" \
                if isinstance(exc, ssl.SSLCertVerificationError) else ""
            raise TlsError(f"TLS with {self.host.url} failed: "
                           f"{getattr(exc, 'verify_message', '') or exc.reason or exc}{hint}") from exc
        except (ConnectionError, OSError) as exc:
            conn.close()
            raise ServerUnreachableError(
                "could not connect to corral server, run 'corral serve' to start it") from exc
        if response.status >= 400:
            message = _error_message(response.read(), response.status)
            conn.close()
            raise ApiError(message, response.status)
        return conn, response

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request, one JSON answer (or None for an empty body)."""
        conn, response = self._send(method, path, body)
        try:
            raw = response.read()
        finally:
            conn.close()
        return json.loads(raw) if raw.strip() else None

    def stream(self, path: str, body: Any) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON object; an in-stream ``error`` raises ``ApiError``.

        Closing the generator (or an exception such as KeyboardInterrupt while it reads)
        closes the connection, which is how the server learns to stop generating.
        """
        conn, response = self._send("POST", path, body)
        try:
            for line in response:
                if not line.strip():
                    continue
                obj = json.loads(line)
                if "error" in obj:
                    raise ApiError(obj["error"])
                yield obj
        finally:
            conn.close()

    def open(self, method: str, path: str, *, raw: Any = None,
             headers: dict[str, str] | None = None
             ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request and hand back the open response, for bodies that are not JSON
        (blobs, manifests); the caller reads it and closes the connection."""
        return self._send(method, path, raw=raw, headers=headers)

    def head(self, path: str) -> int:
        """The status of a HEAD request (404 and other errors included, not raised)."""
        try:
            conn, response = self._send("HEAD", path)
        except ApiError as exc:
            return exc.status
        response.read()
        conn.close()
        return response.status

    def upload(self, path: str, source: IO[bytes], size: int,
               on_progress: Callable[[int], None] | None = None) -> int:
        """POST ``size`` bytes from ``source`` in chunks; return the status (200 or 201)."""
        def chunks() -> Iterator[bytes]:
            sent = 0
            while chunk := source.read(UPLOAD_CHUNK):
                sent += len(chunk)
                if on_progress:
                    on_progress(sent)
                yield chunk

        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        conn, response = self._send("POST", path, raw=chunks(), headers=headers)
        response.read()
        conn.close()
        return response.status

    def is_running(self) -> bool:
        """Whether anything answers ``HEAD /`` (an HTTP error still means a server is there);
        ``TlsError`` when one answers but TLS with it fails."""
        try:
            conn, response = self._send("HEAD", "/", timeout=5.0)
        except TlsError:
            raise
        except ServerUnreachableError:
            return False
        except ApiError:
            return True
        response.read()
        conn.close()
        return True


def _error_message(raw: bytes, status: int) -> str:
    try:
        return str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace").strip() or f"{status} {http.client.responses.get(status, '')}".strip()
