"""The OpenAPI document: valid, served, and describing exactly the routes the app serves."""

from __future__ import annotations

from gateway.app import create_app
from gateway.openapi import load_spec
from tests.gateway.fakes import FakeRegistry
from gateway.scheduler import Scheduler

METHODS = {"get", "head", "post", "put", "patch", "delete"}
# The /v2/ write side (CORRAL_REGISTRY_WRITE) is the Distribution protocol registries and
# clients implement, not an API of Corral's: the spec describes the read side only.
UNDESCRIBED = {
    ("put", "/v2/{namespace}/{model}/manifests/{reference}"),
    ("post", "/v2/{namespace}/{model}/blobs/uploads/"),
    ("post", "/v2/{namespace}/{model}/blobs/uploads"),
    ("patch", "/v2/{namespace}/{model}/blobs/uploads/{upload}"),
    ("put", "/v2/{namespace}/{model}/blobs/uploads/{upload}"),
    ("get", "/v2/{namespace}/{model}/blobs/uploads/{upload}"),
    ("delete", "/v2/{namespace}/{model}/blobs/uploads/{upload}"),
}


def served_routes(settings) -> set[tuple[str, str]]:
    app = create_app(settings, registry=FakeRegistry(), scheduler=Scheduler(settings))
    routes = {(route.method.lower(), route.resource.canonical) for route in app.router.routes()}
    # aiohttp answers HEAD for every GET route; the spec lists HEAD only where it matters
    return {(m, p) for m, p in routes if not (m == "head" and ("get", p) in routes)} | \
        {(m, p) for m, p in routes if m == "head" and ("head", p) in described()}


def described() -> set[tuple[str, str]]:
    return {(method, path) for path, item in load_spec()["paths"].items()
            for method in item if method in METHODS}


def test_every_served_route_is_described_and_nothing_else(settings):
    served = served_routes(settings)
    assert served - described() - UNDESCRIBED == set(), "routes missing from gateway/openapi"
    assert described() - served == set(), "described routes the gateway does not serve"


def test_the_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    validate(load_spec())


def test_every_operation_has_an_id_and_documented_responses():
    ids = []
    for path, item in load_spec()["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                ids.append(operation["operationId"])
                assert operation["responses"], (method, path)
    assert len(ids) == len(set(ids))


async def test_the_document_is_served(client):
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert (await response.json())["openapi"] == "3.1.0"
