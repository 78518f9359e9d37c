"""The security middleware in the real gateway app over a real registry (in process).

Origin and Host refusals happen before any handler runs; every route's scope boundary answers
403 (table-driven); keys are checked against the registry on every request, so revocation is
immediate; per-key limits answer 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.app import create_app
from gateway.auth import ROUTE_SCOPES, needed_scopes
from gateway.scheduler import Scheduler
from gateway.security import SECURITY
from services.apikeys import SCOPES, hash_secret, new_secret
from services.errors import RunnerUnavailableError
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import GatewaySettings
from tests.gateway.transfer_stack import real_registry
from tests.registry.conftest import write_tiny_gguf

EVIL = "http://evil.example"


@pytest.fixture
async def registry(tmp_path: Path):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    async with real_registry(tmp_path / "models", {"tiny:v1": gguf}) as client:
        yield client


@pytest.fixture
def make(aiohttp_client, registry, tmp_path):
    async def make(**overrides):
        settings = dataclasses.replace(GatewaySettings.from_env({}), runtime_dir=tmp_path / "run",
                                       **overrides)
        app = create_app(settings, registry=registry, scheduler=Scheduler(settings))
        return await aiohttp_client(app, server_kwargs={"host": "127.0.0.1"})
    return make


@pytest.fixture
async def client(make):
    return await make()


async def create_key(client, name: str, *scopes: str, admin: str = "", **limits) -> str:
    """A new key's secret, made through the admin API (as ``admin`` once keys exist)."""
    response = await client.post("/api/keys", json={"name": name, "scopes": list(scopes), **limits},
                                 headers=bearer(admin) if admin else {})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["name"] == name and body["key"].startswith("corral_")
    return body["key"]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def models(client, headers=None) -> list[str]:
    response = await client.get("/api/tags", headers=headers or {})
    return [m["name"] for m in (await response.json())["models"]]


# -- browser guard ------------------------------------------------------------------------------

async def test_unlisted_origin_is_refused_and_nothing_runs(client) -> None:
    response = await client.post("/api/copy", json={"source": "tiny:v1", "destination": "stolen"},
                                 headers={"Origin": EVIL})
    assert response.status == 403
    assert "origin not allowed" in (await response.json())["error"]
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "stolen:latest" not in await models(client)


@pytest.mark.parametrize(("path", "message_of"), [
    ("/v1/chat/completions", lambda body: body["error"]["message"]),
    ("/v1/messages", lambda body: body["type"] == "error" and body["error"]["message"]),
    ("/v2/library/tiny/manifests/v1", lambda body: body["errors"][0]["message"]),
])
async def test_the_browser_guard_answers_in_the_familys_error_shape(client, path, message_of):
    method = client.get if path.startswith("/v2/") else client.post
    response = await method(path, headers={"Origin": EVIL})
    assert response.status == 403
    assert "origin not allowed" in message_of(await response.json())


async def test_allowed_origin_runs_and_gets_cors_headers(client) -> None:
    response = await client.post("/api/copy", json={"source": "tiny:v1", "destination": "mine"},
                                 headers={"Origin": "http://localhost:3000"})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert response.headers["Vary"] == "Origin"
    assert "mine:latest" in await models(client)
    failed = await client.post("/api/show", json={}, headers={"Origin": "http://localhost:3000"})
    assert failed.status == 400  # the error middleware's reply carries them too
    assert failed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    plain = await client.get("/api/tags")  # the next request on the connection owes none
    assert "Access-Control-Allow-Origin" not in plain.headers


async def test_preflight_on_every_route(client) -> None:
    for path in ("/api/chat", "/v1/chat/completions", "/api/delete", "/v2/", "/no/such/route"):
        response = await client.options(path, headers={
            "Origin": "app://obsidian.md", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os"})
        assert response.status == 204, path
        assert response.headers["Access-Control-Allow-Origin"] == "app://obsidian.md"
        assert "X-Stainless-Os" in response.headers["Access-Control-Allow-Headers"]
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
    refused = await client.options("/api/chat", headers={"Origin": EVIL,
                                                         "Access-Control-Request-Method": "POST"})
    assert refused.status == 403


async def test_ollama_origins_extends_the_list(make) -> None:
    client = await make(origins=("https://chat.example.com",))
    ok = await client.get("/api/tags", headers={"Origin": "https://chat.example.com"})
    assert ok.status == 200 and ok.headers["Access-Control-Allow-Origin"] == "https://chat.example.com"
    assert (await client.get("/api/tags", headers={"Origin": EVIL})).status == 403


@pytest.mark.parametrize("host, status", [
    ("evil.example:11434", 403), ("rebind.attacker.example", 403), ("8.8.8.8", 403),
    ("localhost:11434", 200), ("127.0.0.1:11434", 200), ("[::1]:11434", 200),
    ("dev.localhost", 200), ("box.local:11434", 200), ("192.168.1.5:11434", 200),
])
async def test_host_check_on_a_loopback_bind(client, host: str, status: int) -> None:
    # A rebinding page is same-origin with its own name, so only the Host check stops it.
    response = await client.post("/api/copy", json={"source": "tiny:v1", "destination": "rebound"},
                                 headers={"Host": host, "Origin": f"http://{host}"})
    assert response.status == status
    assert ("rebound:latest" in await models(client)) is (status == 200)


async def test_no_host_check_on_a_network_bind(make) -> None:
    from services.settings import parse_ollama_host

    client = await make(host=parse_ollama_host("0.0.0.0:11434"))
    assert (await client.get("/api/tags", headers={"Host": "corral.example:11434"})).status == 200


# -- keys and scopes ----------------------------------------------------------------------------

async def test_auth_is_off_until_a_key_exists_then_on(client) -> None:
    assert (await client.get("/api/tags")).status == 200
    secret = await create_key(client, "first", "admin")
    response = await client.get("/api/tags")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="corral"'
    assert "requires an API key" in (await response.json())["error"]
    wrong = await client.get("/api/tags", headers=bearer(secret + "x"))
    assert wrong.status == 401 and (await wrong.json()) == {"error": "unauthorized: invalid API key"}
    assert (await client.get("/api/tags", headers=bearer(secret))).status == 200
    basic = base64.b64encode(f"anyone:{secret}".encode()).decode()
    assert (await client.get("/api/tags", headers={"Authorization": f"Basic {basic}"})).status == 200
    assert (await client.get("/")).status == 200  # liveness stays public
    assert secret not in await (await client.get("/api/keys", headers=bearer(secret))).text()


async def test_auth_required_with_no_keys_refuses(make) -> None:
    client = await make(auth="required")
    assert (await client.get("/api/tags")).status == 401
    assert (await client.get("/")).status == 200


def registry_down(monkeypatch, registry) -> None:
    async def unreachable(*_args, **_kwargs):
        raise RunnerUnavailableError("the registry is unavailable")

    monkeypatch.setattr(registry, "check_key", unreachable)


async def test_while_the_registry_is_down_auth_off_stays_off(client, registry,
                                                             monkeypatch) -> None:
    """The operator can still scrape /metrics and read /api/ps during a registry restart."""
    assert (await client.get("/api/ps")).status == 200  # auth off, as the registry says
    registry_down(monkeypatch, registry)
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/api/ps")).status == 200


@pytest.mark.parametrize("auth", ["keys", "required", "never asked"])
async def test_while_the_registry_is_down_a_key_that_cannot_be_checked_is_a_503(
        make, registry, monkeypatch, auth) -> None:
    client = await make(auth="required" if auth == "required" else "auto")
    secret = ""
    if auth == "keys":
        secret = await create_key(client, "root", "admin")
        assert (await client.get("/api/ps", headers=bearer(secret))).status == 200
    if auth == "never asked":
        client.app[SECURITY].auth._keys_seen = None  # as if the startup check had failed
    registry_down(monkeypatch, registry)
    for path, message_of in (("/metrics", lambda body: body["error"]),
                             ("/v1/models", lambda body: body["error"]["message"]),
                             ("/v2/", lambda body: body["errors"][0]["message"])):
        response = await client.get(path, headers=bearer(secret) if secret else {})
        assert response.status == 503
        assert message_of(await response.json()) == (
            "cannot check the API key: the registry is unavailable")
    token = await client.get("/v2/token", headers=bearer(secret) if secret else {})
    assert token.status == 503 and (await token.json())["errors"][0]["code"] == "UNKNOWN"


async def test_revoked_key_is_refused_on_its_next_request(client) -> None:
    admin = await create_key(client, "admin", "admin")
    reader = await create_key(client, "reader", "read", admin=admin)
    assert (await client.get("/api/tags", headers=bearer(reader))).status == 200
    revoke = await client.delete("/api/keys/reader", headers=bearer(admin))
    assert revoke.status == 200
    assert (await client.get("/api/tags", headers=bearer(reader))).status == 401
    missing = await client.delete("/api/keys/reader", headers=bearer(admin))
    assert missing.status == 404


async def test_expired_key_is_refused(client, registry) -> None:
    secret = new_secret()
    request = pb.CreateKeyRequest(name="brief", scopes=["read"], key_hash=hash_secret(secret))
    stamp = Timestamp()
    stamp.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300))
    request.expires_at.CopyFrom(stamp)
    await registry.create_key(request)
    assert (await client.get("/api/tags", headers=bearer(secret))).status == 200
    await asyncio.sleep(0.4)
    response = await client.get("/api/tags", headers=bearer(secret))
    assert response.status == 401
    assert (await response.json()) == {"error": "unauthorized: API key expired"}


# Each route with a request that, once past the middleware, answers at once without a runner:
# status 403 proves the handler never ran; anything else proves it did.
ROUTES = [
    ("GET", "/api/version", None), ("GET", "/api/tags", None), ("GET", "/api/ps", None),
    ("POST", "/api/show", b""), ("POST", "/api/generate", b""), ("POST", "/api/chat", b""),
    ("POST", "/api/embed", b""), ("POST", "/api/embeddings", b""),
    ("POST", "/api/create", b""), ("POST", "/api/copy", b""), ("DELETE", "/api/delete", b""),
    ("HEAD", "/api/blobs/sha256:bad", None), ("POST", "/api/blobs/sha256:bad", b""),
    ("POST", "/api/pull", b""), ("POST", "/api/push", b""),
    ("GET", "/api/keys", None), ("POST", "/api/keys", b""), ("DELETE", "/api/keys/nobody", None),
    ("GET", "/v1/models", None), ("GET", "/v1/models/tiny:v1", None),
    ("POST", "/v1/chat/completions", b""), ("POST", "/v1/completions", b""),
    ("POST", "/v1/embeddings", b""), ("POST", "/v1/responses", b""),
    ("GET", "/v2/", None), ("GET", "/v2/library/tiny/manifests/v1", None),
    ("HEAD", "/v2/library/tiny/blobs/sha256:" + "0" * 64, None),
    ("PUT", "/v2/library/tiny/manifests/v2", b"{}"), ("POST", "/v2/library/tiny/blobs/uploads/", b""),
    ("GET", "/metrics", None),
]


async def test_every_scope_boundary_answers_403(client) -> None:
    admin = await create_key(client, "only-admin", "admin")
    keys = {"admin": admin}
    for scope in SCOPES[:-1]:
        keys[scope] = await create_key(client, f"only-{scope.replace(':', '-')}", scope, admin=admin)
    checked = 0
    for method, path, body in ROUTES:
        needed = needed_scopes(method, _canonical(path))
        for scope, secret in keys.items():
            response = await client.request(method, path, data=body, headers=bearer(secret))
            allowed = scope == "admin" or scope in needed
            assert (response.status == 403) is not allowed, (method, path, scope, response.status)
            assert response.status != 401
            checked += 1
    assert checked == len(ROUTES) * len(SCOPES)


def _canonical(path: str) -> str:
    for pattern, fixed in (("/api/blobs/", "/api/blobs/{digest}"), ("/api/keys/", "/api/keys/{name}"),
                           ("/v1/models/", "/v1/models/{model}")):
        if path.startswith(pattern):
            return fixed
    return path


async def test_every_registered_route_has_an_explicit_scope(client) -> None:
    for route in client.app.router.routes():  # sub-apps' routes too, with their prefixes
        path = route.resource.canonical
        assert path in ROUTE_SCOPES or path.startswith(("/v1/", "/v2")), path


async def test_scope_refusals_use_each_api_familys_shape(client) -> None:
    admin = await create_key(client, "admin", "admin")
    reader = await create_key(client, "reader", "read", admin=admin)
    ollama = await client.post("/api/delete", json={"model": "tiny:v1"}, headers=bearer(reader))
    assert ollama.status == 403
    assert (await ollama.json()) == {"error": "forbidden: API key 'reader' lacks the 'manage' scope"}
    openai = await client.post("/v1/chat/completions", json={}, headers=bearer(reader))
    assert (await openai.json())["error"]["type"] == "permission_error"
    oci = await client.get("/v2/library/tiny/manifests/v1", headers=bearer(reader))
    assert oci.status == 403 and (await oci.json())["errors"][0]["code"] == "DENIED"
    assert "tiny:v1" in await models(client, bearer(reader))


async def test_admin_api_validates(client) -> None:
    for body, status in (({"name": "x", "scopes": ["root"]}, 400), ({"name": "x", "scopes": []}, 400),
                         ({"name": "bad name", "scopes": ["read"]}, 400),
                         ({"name": "x", "scopes": ["read"], "expires": "yesterday"}, 400),
                         ({"name": "x", "scopes": ["read"], "requests_per_minute": -1}, 400),
                         ({"name": "x", "scopes": "read"}, 400)):
        response = await client.post("/api/keys", json=body)
        assert response.status == status, body
    created = await client.post("/api/keys", json={"name": "x", "scopes": ["read", "inference"],
                                                   "expires": "30d"})
    described = await created.json()
    assert described["scopes"] == ["read", "inference"] and described["expired"] is False
    again = await client.post("/api/keys", json={"name": "x", "scopes": ["read"]},
                              headers=bearer(described["key"]))
    assert again.status == 403  # keys exist now, and "read" is not "admin"


# -- /v2/ token flow ----------------------------------------------------------------------------

async def test_v2_challenge_token_and_bearer(client) -> None:
    secret = await create_key(client, "puller", "registry:pull")
    response = await client.get("/v2/library/tiny/manifests/v1")
    assert response.status == 401
    challenge = response.headers["WWW-Authenticate"]
    host = f"127.0.0.1:{client.port}"
    assert challenge == (f'Bearer realm="http://{host}/v2/token",service="corral",'
                         'scope="repository:library/tiny:pull"')
    assert (await response.json())["errors"][0]["code"] == "UNAUTHORIZED"
    anonymous = await client.get("/v2/token?service=corral&scope=repository:library/tiny:pull")
    assert anonymous.status == 401
    basic = base64.b64encode(f"corral:{secret}".encode()).decode()
    token = await client.get("/v2/token?service=corral", headers={"Authorization": f"Basic {basic}"})
    assert token.status == 200
    issued = (await token.json())["token"]
    manifest = await client.get("/v2/library/tiny/manifests/v1", headers=bearer(issued))
    assert manifest.status == 200
    push = await client.put("/v2/library/tiny/manifests/v2", data=b"{}", headers=bearer(issued))
    assert push.status == 403


# -- limits -------------------------------------------------------------------------------------

async def test_requests_per_minute_answers_429_with_retry_after(client) -> None:
    secret = await create_key(client, "tight", "read", requests_per_minute=2)
    for _ in range(2):
        assert (await client.get("/api/tags", headers=bearer(secret))).status == 200
    limited = await client.get("/api/tags", headers=bearer(secret))
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert "2 requests per minute" in (await limited.json())["error"]


async def test_concurrent_generations_answer_429(client) -> None:
    secret = await create_key(client, "single", "inference", "read", max_concurrent=1)
    with client.app[SECURITY].limits.generation("single", 1):  # one generation in flight
        busy = await client.post("/api/generate", data=b"", headers=bearer(secret))
        assert busy.status == 429 and busy.headers["Retry-After"] == "1"
        assert (await client.get("/api/tags", headers=bearer(secret))).status == 200
    assert (await client.post("/api/generate", data=b"", headers=bearer(secret))).status == 400


# -- startup ------------------------------------------------------------------------------------

async def test_a_network_bind_without_keys_warns_loudly(make) -> None:
    from services.settings import parse_ollama_host

    with structlog.testing.capture_logs() as logs:
        await make(host=parse_ollama_host("0.0.0.0:11434"))
    (warning,) = [entry for entry in logs if entry["event"] == "auth_off_on_network"]
    assert warning["log_level"] == "warning" and "authentication OFF" in warning["message"]
    with structlog.testing.capture_logs() as logs:
        await make()  # loopback: Ollama's behaviour, no warning
    assert not [entry for entry in logs if entry["event"] == "auth_off_on_network"]


async def test_required_without_keys_warns(make) -> None:
    with structlog.testing.capture_logs() as logs:
        await make(auth="required")
    assert [entry for entry in logs if entry["event"] == "auth_required_without_keys"]
