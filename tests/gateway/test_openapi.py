"""The OpenAPI document: valid, served, and describing exactly the routes the app serves."""

from __future__ import annotations

import json

from aiohttp.test_utils import make_mocked_request

from gateway.app import create_app
from gateway.auth import needed_scopes
from gateway.openapi import load_spec, refusal_family
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


def test_every_operation_names_the_scope_the_gateway_asks_for():
    spec = load_spec()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            alternatives = operation.get("security", spec["security"])
            described_scopes = {scope for requirement in alternatives
                                for scope in requirement.get("apiKey", [])}
            assert described_scopes == set(needed_scopes(method.upper(), path)), (method, path)


def test_every_path_answers_a_preflight_and_every_operation_its_refusals():
    spec = load_spec()
    for path, item in spec["paths"].items():
        assert set(item["options"]["responses"]) == {"204", "403"}, path
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation["responses"]
            family = refusal_family(path)
            assert responses["403"] == {"$ref": f"#/components/responses/{family}Forbidden"}
            if needed_scopes(method.upper(), path):
                assert responses["401"]["$ref"].endswith(f"/{family}Unauthorized"), (method, path)
                assert responses["429"]["$ref"].endswith(f"/{family}TooManyRequests")


def test_refusals_are_documented_in_the_shape_the_middleware_sends():
    """401/403/429 bodies and headers, per family, against gateway.security.refusal_response."""
    from jsonschema.validators import Draft202012Validator

    from gateway.security import refusal_response

    spec = load_spec()
    paths = {"": "/api/tags", "OpenAI": "/v1/models", "Anthropic": "/v1/messages",
             "OCI": "/v2/{namespace}/{model}/blobs/{digest}"}
    for family, path in paths.items():
        for status, name in ((401, "Unauthorized"), (403, "Forbidden"),
                             (429, "TooManyRequests")):
            request = make_mocked_request("GET", path.replace("{", "").replace("}", ""))
            response = refusal_response(request, path, status, "no")
            if status == 429:
                response.headers["Retry-After"] = "3"
            documented = spec["components"]["responses"][family + name]
            for header, value in documented.get("headers", {}).items():
                assert header in response.headers, (family, status, header)
            schema = documented["content"]["application/json"]["schema"]
            Draft202012Validator({**spec, **schema}).validate(json.loads(response.body))
