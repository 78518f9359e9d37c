"""A scripted HTTP peer speaking Ollama's documented shapes, for the CLI's tests (the ``peer``
fixture in conftest starts one and points OLLAMA_HOST at it)."""

from __future__ import annotations

import hashlib
import json
from http.server import BaseHTTPRequestHandler


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


def scripted_handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
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
