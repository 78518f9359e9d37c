"""One error translator per wire dialect: Ollama's on the app, OpenAI's, Anthropic's and the OCI
registry's on their sub-apps. A bug (an exception no code meant to raise) answers a generic 500
in the dialect's shape, never the exception's text; the router's own 404/405 stay Go's plain
text everywhere; the security middleware still guards every sub-app route."""

from __future__ import annotations

import pytest

from services.errors import INTERNAL_MESSAGE, RunnerUnavailableError, UpstreamError

SECRET = "/srv/secret/path"


async def _crash(*_args, **_kwargs):
    raise KeyError(SECRET)


@pytest.fixture
def crashing(registry):
    """The registry client raises an unexpected KeyError from every call a route makes."""
    for name in ("list_models", "resolve", "get_manifest", "stat_blob"):
        setattr(registry, name, _crash)
    return registry


async def test_a_bug_is_a_generic_500_in_ollamas_shape(client, crashing):
    response = await client.get("/api/tags")
    assert (response.status, await response.json()) == (500, {"error": INTERNAL_MESSAGE})


async def test_a_bug_is_a_generic_500_in_openais_shape(client, crashing):
    response = await client.get("/v1/models")
    assert response.status == 500
    assert await response.json() == {"error": {"message": INTERNAL_MESSAGE, "type": "api_error",
                                               "param": None, "code": None}}


async def test_a_bug_is_a_generic_500_in_anthropics_shape(client, crashing):
    response = await client.post("/v1/messages/count_tokens", json={
        "model": "tiny:v1", "messages": [{"role": "user", "content": "hi"}]})
    body = await response.json()
    assert response.status == 500 and SECRET not in await response.text()
    assert body["type"] == "error"
    assert body["error"] == {"type": "api_error", "message": INTERNAL_MESSAGE}


async def test_a_bug_is_a_generic_500_in_the_oci_shape(client, crashing):
    response = await client.get("/v2/library/tiny/manifests/v1")
    assert response.status == 500
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert await response.json() == {"errors": [{"code": "UNKNOWN", "message": INTERNAL_MESSAGE,
                                                 "detail": None}]}


async def test_every_v2_route_answers_domain_errors_in_the_oci_shape(make_client, settings,
                                                                     registry):
    """``?mount=`` had no try/except: a registry outage there was Ollama's shape."""
    async def down(*_args, **_kwargs):
        raise RunnerUnavailableError("the model registry is unavailable")

    registry.stat_blob = down
    client = await make_client(settings, registry_write=True)
    response = await client.post("/v2/library/tiny/blobs/uploads/?mount=sha256:" + "a" * 64)
    assert (response.status, await response.json()) == (503, {"errors": [{
        "code": "UNKNOWN", "message": "the model registry is unavailable", "detail": None}]})


async def test_an_upstream_refusal_is_a_502_in_each_shape(client, registry):
    async def refused(*_args, **_kwargs):
        raise UpstreamError("unauthorized: access denied")

    registry.list_models = refused
    registry.get_manifest = refused
    native = await client.get("/api/tags")
    assert (native.status, await native.json()) == (502, {"error": "unauthorized: access denied"})
    openai = await client.get("/v1/models")
    assert openai.status == 502
    assert (await openai.json())["error"]["message"] == "unauthorized: access denied"
    oci = await client.get("/v2/library/tiny/manifests/v1")
    assert oci.status == 502 and (await oci.json())["errors"][0]["code"] == "UNKNOWN"


@pytest.mark.parametrize("method,path,status,text", [
    ("GET", "/v1/nope", 404, "404 page not found"),
    ("GET", "/v1/messages/nope", 404, "404 page not found"),
    ("GET", "/v2/library/tiny/nope", 404, "404 page not found"),
    ("GET", "/v1/chat/completions", 405, "405 method not allowed"),
    ("GET", "/v1/messages", 405, "405 method not allowed"),
])
async def test_the_routers_own_refusals_stay_plain_text_under_every_prefix(client, method, path,
                                                                           status, text):
    response = await client.request(method, path)
    assert (response.status, await response.text()) == (status, text)


async def test_sub_app_routes_still_pass_the_security_middleware(client):
    """The parent's middlewares run before a sub-app's: a cross-site Origin is refused on each."""
    for path in ("/v1/models", "/v1/messages/count_tokens", "/v2/"):
        method = "POST" if "messages" in path else "GET"
        response = await client.request(method, path, headers={"Origin": "https://evil.example"})
        assert response.status == 403, path


async def test_sub_app_routes_are_counted_under_their_full_route(client):
    await client.get("/v1/models")
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/v1/models"' in metrics
