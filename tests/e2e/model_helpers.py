"""Making and using models through a real server in the e2e tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.e2e.server import CorralServer

BASE = "smollm2:135m"  # what ``created`` derives from
TOOLS_TEMPLATE = """{{- if .Tools }}<|im_start|>system
You can call these tools. Answer with a JSON object {"name": ..., "arguments": {...}}.
{{ range .Tools }}{{ . }}
{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}{{ end }}
{{- else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


@contextlib.contextmanager
def created(server: CorralServer, name: str, **fields) -> Iterator[str]:
    """A model made with /api/create from SmolLM2, deleted afterwards."""
    status, body = server.post("/api/create", {"model": name, "from": BASE, "stream": False,
                                               **fields})
    assert status == 200, body
    try:
        yield name
    finally:
        server.request("DELETE", "/api/delete", {"model": name})


def generate(server: CorralServer, model: str, prompt: str, keep_alive: object = None,
             **options) -> dict:
    status, body = server.post("/api/generate", {
        "model": model, "prompt": prompt, "stream": False, "keep_alive": keep_alive,
        "options": {"temperature": 0, "seed": 1, "num_ctx": 512, **options}})
    assert status == 200, body
    return body
