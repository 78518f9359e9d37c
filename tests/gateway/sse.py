"""Reading the OpenAI dialect's server-sent events in the gateway tests."""

from __future__ import annotations

import json


def sse_events(text: str) -> list:
    """The ``data:`` payloads of an SSE body; ``[DONE]`` stays a string."""
    blocks = text.split("\n\n")
    assert blocks[-1] == ""
    payloads = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block
        data = block[len("data: "):]
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads
