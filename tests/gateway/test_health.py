"""/healthz and /readyz over a fake registry."""

from __future__ import annotations


async def test_healthz_answers_while_the_process_runs(client, registry):
    registry.down = True
    response = await client.get("/healthz")
    assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_readyz_is_200_when_the_registry_answers_at_the_newest_schema(client):
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "ready" and body["registry"]["migrated"] is True


async def test_readyz_is_503_while_the_registry_is_down(client, registry):
    registry.down = True
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503
    assert body["status"] == "unavailable" and body["registry"]["reachable"] is False
    registry.down = False
    assert (await client.get("/readyz")).status == 200


async def test_readyz_is_503_when_the_schema_is_behind(client, registry):
    registry.schema_revision = ""
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["registry"]["migrated"] is False


async def test_ollama_root_is_unchanged(client):
    response = await client.get("/")
    assert (response.status, await response.text()) == (200, "Ollama is running")
    assert (await client.head("/")).status == 200
