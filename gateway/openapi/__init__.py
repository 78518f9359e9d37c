"""The OpenAPI 3.1 description of every route Corral serves, served at ``GET /openapi.json``.

Kept by hand, one YAML file per API family (``base.yaml`` holds the frame and shared
components); ``load_spec`` merges them into one document and refuses a path or component
defined twice. Two things the security middleware does for every route are added here rather
than written out per operation: its refusals (403 always; 401 and 429 where the operation's
``security`` names a scope) in the family's error shape, and the OPTIONS preflight it answers
on every path (``base.yaml`` says why).

It cannot drift from the code: the end-to-end tests validate every response they receive
against it (``tests/e2e/openapi_check.py``), ``tests/gateway/test_openapi.py`` checks that it
and the router list the same routes and that each operation's ``security`` is the scope
``gateway.auth`` asks for, and schemathesis fuzzes a live server from it (``tests/fuzz``).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

HERE = Path(__file__).resolve().parent
FAMILIES = ("native", "models", "store", "openai", "openai_responses", "anthropic", "registry",
            "keys", "operations")
METHODS = ("get", "head", "post", "put", "patch", "delete")


def _merge(spec: dict[str, Any], fragment: dict[str, Any], name: str) -> None:
    for path, item in (fragment.get("paths") or {}).items():
        if path in spec["paths"]:
            raise ValueError(f"{name}.yaml: path {path} is already described")
        spec["paths"][path] = item
    for kind, entries in (fragment.get("components") or {}).items():
        target = spec["components"].setdefault(kind, {})
        for key, value in entries.items():
            if key in target:
                raise ValueError(f"{name}.yaml: components.{kind}.{key} is already defined")
            target[key] = value


def refusal_family(path: str) -> str:
    """The prefix of the responses in the error shape ``path`` is refused in (as
    ``gateway.security.refusal_response`` chooses it): ``""`` is Ollama's."""
    if path == "/v2" or path.startswith("/v2/"):
        return "OCI"
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "Anthropic"
    return "OpenAI" if path.startswith("/v1/") else ""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


_REFUSALS = {"401": "Unauthorized", "403": "Forbidden", "429": "TooManyRequests"}
# A 503 when the registry, which checks keys, cannot be asked: the family's generic failure,
# which most operations list already for their own reasons.
_UNAVAILABLE = {"": "Busy", "OpenAI": "OpenAIFailure", "Anthropic": "AnthropicFailure",
                "OCI": "OCIError"}


def _add_refusals(spec: dict[str, Any]) -> None:
    """Every operation may meet the browser guard (403); one that needs a scope may also get
    401 (no valid key), 403 (the key lacks the scope), 429 (the key's limits) and 503 (keys
    may be on and the registry cannot be asked)."""
    for path, item in spec["paths"].items():
        family = refusal_family(path)
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation["responses"]
            scoped = bool(operation.get("security", spec["security"]))
            for status in ("401", "403", "429") if scoped else ("403",):
                if status in responses:
                    raise ValueError(f"{method} {path}: {status} is the security middleware's")
                responses[status] = _ref(family + _REFUSALS[status])
            if scoped:
                responses.setdefault("503", _ref(_UNAVAILABLE[family]))


def _add_preflights(spec: dict[str, Any]) -> None:
    """An OPTIONS operation on every path: the middleware answers it before routing."""
    for path, item in spec["paths"].items():
        if "options" in item:
            raise ValueError(f"{path}: OPTIONS is added by the loader")
        first = next(op for method, op in item.items() if method in METHODS)
        item["options"] = {
            "tags": first["tags"], "operationId": first["operationId"] + "Preflight",
            "summary": "CORS preflight (answered by the security middleware).", "security": [],
            "responses": {"204": _ref("Preflight"),
                          "403": _ref(refusal_family(path) + "Forbidden")}}
        if in_path := [p for p in first.get("parameters", []) if p.get("in") == "path"]:
            item["options"]["parameters"] = in_path  # where the path item does not list them


@functools.cache
def _load() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((HERE / "base.yaml").read_text())
    for family in FAMILIES:
        _merge(spec, yaml.safe_load((HERE / f"{family}.yaml").read_text()), family)
    _add_refusals(spec)
    _add_preflights(spec)
    return spec


def load_spec() -> dict[str, Any]:
    """The merged document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_load())


@functools.cache
def spec_bytes() -> bytes:
    return json.dumps(_load(), ensure_ascii=False, indent=1).encode()


async def openapi_json(_request: web.Request) -> web.Response:
    return web.Response(body=spec_bytes(), headers={"Content-Type": "application/json"})


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
