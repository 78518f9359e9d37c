"""Schemathesis against a live ``corral serve``, from the OpenAPI document it serves.

Every operation gets up to ``MAX_EXAMPLES`` requests that fit its schema and as many that do
not. Each response must not be a 5xx, must use a documented status and content type and must
match its schema; each request has ``REQUEST_TIMEOUT_S`` to answer (no hangs). All failures are
gathered and reported together, with the request that caused each.

Nothing may leave the machine: pull, push and create name remote registries, so their model
names are put under ``127.0.0.1:9`` (discard: closed, refused at once). Names that were invalid
stay invalid, so the 400 paths are still fuzzed.

Auth is on, with one admin key every request carries: otherwise the first key the fuzzer made
through ``POST /api/keys`` would turn auth on and leave every later operation a 401. Its name
is not one the fuzzer can guess, so ``DELETE /api/keys/{name}`` cannot revoke it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.e2e.server import CorralServer

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = int(os.environ.get("CORRAL_FUZZ_EXAMPLES", "25"))
REQUEST_TIMEOUT_S = 30.0
DEAD_END = "127.0.0.1:9"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
NAME_FIELDS = {"/api/pull": ("model", "name"), "/api/push": ("model", "name"),
               "/api/create": ("from",)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("fuzz")
    srv = CorralServer(base / "models", base / "serve.log").start()
    status, key = srv.post("/api/keys", {"name": f"fuzz-{secrets.token_hex(16)}",
                                         "scopes": ["admin"]})
    assert status == 200, key
    srv.headers = {"Authorization": f"Bearer {key['key']}"}
    yield srv
    srv.stop()


def confine(case, headers: dict[str, str]) -> None:
    """Send the admin key; point every remote model name in the body at a closed loopback port."""
    case.headers = {**(case.headers or {}), **headers}
    fields = NAME_FIELDS.get(case.operation.path, ())
    if isinstance(case.body, dict):
        for field in fields:
            if isinstance(case.body.get(field), str) and case.body[field]:
                case.body[field] = f"{DEAD_END}/{case.body[field]}"


def fuzz_operation(operation, server: CorralServer, session: requests.Session,
                   mode: GenerationMode) -> list[str]:
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    def run(case) -> None:
        confine(case, server.headers)
        try:
            case.call_and_validate(base_url=server.url, session=session, checks=CHECKS,
                                   timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            failures.append(f"{mode.value}: no answer in {REQUEST_TIMEOUT_S}s to\n"
                            f"  {case.as_curl_command()}")
        except (AssertionError, FailureGroup) as exc:
            lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            failures.append(f"{mode.value}: {' / '.join(lines[:14])}")

    try:
        run()
    except Unsatisfiable:
        pass
    return failures


# schemathesis's HTTP session leaves a TLS socket to the server for the collector to close
@pytest.mark.filterwarnings("ignore:Exception ignored in.*SSLSocket:pytest.PytestUnraisableExceptionWarning")
def test_the_api_survives_schemathesis(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    session = requests.Session()
    report: dict[str, list[str]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if found := fuzz_operation(operation, server, session, mode):
                report.setdefault(operation.label, []).extend(dict.fromkeys(found))
    assert server.request("GET", "/readyz")[0] == 200  # and the server is still well
    assert not report, "\n\n".join(f"{label}:\n  " + "\n  ".join(found)
                                   for label, found in report.items())
