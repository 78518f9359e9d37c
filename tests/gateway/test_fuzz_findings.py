"""Regressions for what the schemathesis stage (tests/fuzz) found, each a request that used to
get a 500."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/api/generate", 404),  # model '' not found, as for {}
    ("POST", "/api/chat", 400),
    ("POST", "/api/embeddings", 400),
    ("DELETE", "/api/delete", 400),
    ("POST", "/api/pull", 400),
    ("POST", "/v1/chat/completions", 400),
])
async def test_a_json_null_body_is_an_empty_request_not_a_crash(client, method, path, status):
    """Go decodes ``null`` into a request struct as no fields: the reply is the one ``{}`` gets."""
    response = await client.request(method, path, data=b"null",
                                    headers={"Content-Type": "application/json"})
    empty = await client.request(method, path, data=b"{}",
                                 headers={"Content-Type": "application/json"})
    assert response.status == empty.status == status
    assert await response.read() == await empty.read()


async def test_a_streamed_response_for_an_unknown_model_is_a_404_not_an_event_stream(client):
    response = await client.post("/v1/responses", json={"model": "nope", "input": "hi",
                                                        "stream": True})
    assert response.status == 404
    assert (await response.json())["error"]["type"] == "not_found_error"
