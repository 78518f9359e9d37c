"""The OpenAPI 3.1 description of every route Corral serves, served at ``GET /openapi.json``.

Kept by hand, one YAML file per API family (``base.yaml`` holds the frame and shared
components); ``load_spec`` merges them into one document and refuses a path or component
defined twice. It cannot drift from the code: the end-to-end tests validate every response
they receive against it (``tests/e2e/openapi_check.py``), ``tests/gateway/test_openapi.py``
checks that it and the router list the same routes, and schemathesis fuzzes a live server
from it (``tests/fuzz``).
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
FAMILIES = ("native", "models", "openai", "openai_responses", "registry", "operations")


def _merge(spec: dict, fragment: dict, name: str) -> None:
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


@functools.cache
def _load() -> dict[str, Any]:
    spec = yaml.safe_load((HERE / "base.yaml").read_text())
    for family in FAMILIES:
        _merge(spec, yaml.safe_load((HERE / f"{family}.yaml").read_text()), family)
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
