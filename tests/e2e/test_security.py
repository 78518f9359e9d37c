"""Safe on a network, end to end through real ``corral serve`` processes and the real model.

One Corral (``guarded``) starts the way a laptop runs it: loopback, no keys. It refuses foreign
browser origins and DNS-rebinding hosts before anything runs. Then keys are created with the
``corral keys`` CLI and auth turns on: the official ollama and OpenAI clients, the CLI and a
second Corral pulling from the first one's ``/v2/`` all work with a key; every scope boundary
answers 403; a tight rate limit answers 429; a revoked key is refused. Last, the whole process
tree's log (gateway, registry, runner) is searched for every secret. A third Corral serves HTTPS
with a certificate this test makes.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.server import CorralServer
from tests.e2e.cli_helpers import corral_cli, one_error_line
from tests.e2e.transfer_helpers import start_empty

pytestmark = pytest.mark.e2e

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 7, "num_predict": 4}
SECRETS: list[str] = []  # every secret this module sees; none may reach a log


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorralServer]:
    base = tmp_path_factory.mktemp("guarded")
    server = CorralServer(base / "models", base / "serve.log", CORRAL_MAX_NUM_CTX="4096").start()
    yield server
    server.stop()


def raw_request(server: CorralServer, method: str, path: str, headers: dict[str, str],
                body: object = None) -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (``Host`` included), bypassing urllib's."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        data = b"" if body is None else json.dumps(body).encode()
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            conn.putheader(name, value)
        conn.endheaders(data)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def system_prompt(server: CorralServer) -> str:
    return server.post("/api/show", {"model": MODEL})[1].get("system", "")


# -- Ollama's browser guard (no keys yet) -----------------------------------------------------

def test_unlisted_origin_is_refused_and_the_model_is_unchanged(guarded: CorralServer) -> None:
    before = system_prompt(guarded)
    status, _, body = raw_request(guarded, "POST", "/api/create", {
        "Host": f"127.0.0.1:{guarded.port}", "Origin": "http://evil.example",
        "Content-Type": "text/plain"},  # a "simple" request: browsers send it without preflight
        {"model": MODEL, "from": MODEL, "system": "You are pwned."})
    assert status == 403 and "origin not allowed" in json.loads(body)["error"]
    assert system_prompt(guarded) == before != "You are pwned."
    refused = guarded.log_events("request_refused")
    assert any(r.get("reason") == "origin not allowed" for r in refused)


def test_allowed_origin_preflight_and_request_pass(guarded: CorralServer) -> None:
    status, headers, _ = raw_request(guarded, "OPTIONS", "/api/chat", {
        "Host": f"127.0.0.1:{guarded.port}", "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Authorization" in headers["Access-Control-Allow-Headers"].split(",")
    assert "POST" in headers["Access-Control-Allow-Methods"]
    status, headers, body = raw_request(guarded, "GET", "/api/tags", {
        "Host": f"127.0.0.1:{guarded.port}", "Origin": "http://localhost:3000"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert MODEL in body.decode()


def test_rebinding_host_is_refused_on_a_loopback_bind(guarded: CorralServer) -> None:
    # After DNS rebinding the page is same-origin with the attacker's name: only Host tells.
    attacker = f"rebind.attacker.example:{guarded.port}"
    status, _, body = raw_request(guarded, "POST", "/api/copy", {
        "Host": attacker, "Origin": f"http://{attacker}", "Content-Type": "text/plain"},
        {"source": MODEL, "destination": "rebound"})
    assert status == 403 and "host not allowed" in json.loads(body)["error"]
    assert "rebound:latest" not in [m["name"] for m in guarded.get("/api/tags")["models"]]
    assert raw_request(guarded, "GET", "/api/version", {"Host": f"localhost:{guarded.port}"})[0] == 200


def test_num_ctx_past_the_servers_cap_is_a_400(guarded: CorralServer) -> None:
    status, body = guarded.post("/api/generate", {"model": MODEL, "prompt": "hi", "stream": False,
                                                  "options": {"num_ctx": 100_000}})
    assert status == 400 and "CORRAL_MAX_NUM_CTX" in body["error"]


# -- API keys -------------------------------------------------------------------------------

def cli(server: CorralServer, *args: str, key: str = "", **env: str):
    return corral_cli(*args, host=server.url, **({"CORRAL_API_KEY": key} if key else {}), **env)


def new_key(server: CorralServer, name: str, *flags: str, admin: str = "", **env: str) -> str:
    created = cli(server, "keys", "create", name, *flags, key=admin, **env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("corral_") and "not shown again" in created.stderr
    SECRETS.append(secret)
    return secret


@pytest.fixture(scope="module")
def admin(guarded: CorralServer) -> str:
    """The first key (created while auth is off); from then on auth is on."""
    return new_key(guarded, "root", "--scope", "admin")


@pytest.fixture(scope="module")
def user(guarded: CorralServer, admin: str) -> str:
    return new_key(guarded, "app", "--scope", "read,inference", admin=admin)


def test_auth_is_on_once_a_key_exists(guarded: CorralServer, admin: str) -> None:
    status, headers, body = raw_request(guarded, "GET", "/api/tags",
                                        {"Host": f"127.0.0.1:{guarded.port}"})
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="corral"'
    assert json.loads(body)["error"].startswith("unauthorized:")
    listed = cli(guarded, "keys", "list", key=admin)
    assert listed.returncode == 0 and "root" in listed.stdout and "admin" in listed.stdout
    assert admin not in listed.stdout


def test_official_ollama_client_with_headers(guarded: CorralServer, user: str) -> None:
    client = ollama.Client(host=guarded.url, headers={"Authorization": f"Bearer {user}"}, timeout=120)
    assert MODEL in [m.model for m in client.list().models]
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Name a colour."}],
                        options=GREEDY)
    assert reply.message.content.strip() and reply.done
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=guarded.url, timeout=30).list()
    assert refused.value.status_code == 401
    with pytest.raises(ollama.ResponseError) as forbidden:
        client.delete(MODEL)
    assert forbidden.value.status_code == 403 and "'manage'" in forbidden.value.error


def test_official_openai_client_with_api_key(guarded: CorralServer, user: str) -> None:
    client = openai.OpenAI(base_url=guarded.url + "/v1", api_key=user, max_retries=0, timeout=120)
    assert MODEL in [m.id for m in client.models.list()]
    reply = client.chat.completions.create(model=MODEL, max_tokens=4, temperature=0, seed=7,
                                           messages=[{"role": "user", "content": "Name a colour."}])
    assert reply.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded.url + "/v1", api_key="corral_wrong", max_retries=0).models.list()


def test_corral_cli_with_corral_api_key(guarded: CorralServer, user: str) -> None:
    listed = cli(guarded, "list", key=user)
    assert listed.returncode == 0 and MODEL in listed.stdout
    ran = cli(guarded, "run", MODEL, "Name a colour in one word.", key=user)
    assert ran.returncode == 0 and ran.stdout.strip(), ran.stderr
    assert "unauthorized" in one_error_line(cli(guarded, "list"))
    assert "lacks the 'manage' scope" in one_error_line(cli(guarded, "rm", MODEL, key=user))


# One representative request per scope; without the scope it must be 403, with it anything else.
BOUNDARIES = [
    ("read", "GET", "/api/tags", None), ("read", "GET", "/v1/models", None),
    ("inference", "POST", "/api/generate", {}), ("inference", "POST", "/v1/chat/completions", {}),
    ("inference", "POST", "/api/embed", {}),
    ("manage", "POST", "/api/copy", {}), ("manage", "POST", "/api/pull", {}),
    ("registry:pull", "GET", "/v2/library/smollm2/manifests/135m", None),
    ("registry:push", "PUT", "/v2/library/smollm2/manifests/other", {}),
    ("metrics", "GET", "/metrics", None), ("admin", "GET", "/api/keys", None),
]


def test_every_scope_boundary_answers_403(guarded: CorralServer, admin: str) -> None:
    scopes = sorted({scope for scope, *_ in BOUNDARIES} - {"admin"})
    keys = {s: new_key(guarded, "only-" + s.replace(":", "-"), "--scope", s, admin=admin)
            for s in scopes}
    keys["admin"] = admin
    for needed, method, path, body in BOUNDARIES:
        for scope, secret in keys.items():
            status, _, reply = raw_request(guarded, method, path, {
                "Host": f"127.0.0.1:{guarded.port}", "Authorization": f"Bearer {secret}"}, body)
            allowed = scope in (needed, "admin")
            assert (status == 403) is not allowed, (scope, method, path, status, reply[:200])
            assert status != 401


def test_corral_pulls_from_a_key_protected_corral(guarded: CorralServer, admin: str,
                                                   tmp_path: Path) -> None:
    status, headers, _ = raw_request(guarded, "GET", "/v2/library/smollm2/manifests/135m",
                                     {"Host": f"127.0.0.1:{guarded.port}"})
    assert status == 401
    assert headers["WWW-Authenticate"].startswith(
        f'Bearer realm="http://127.0.0.1:{guarded.port}/v2/token",service="corral"')
    puller = new_key(guarded, "mirror", "--scope", "registry:pull", admin=admin)
    auth = tmp_path / "registry-auth.json"
    auth.write_text(json.dumps({f"127.0.0.1:{guarded.port}": {"username": "corral", "password": puller}}))
    mirror = start_empty(CorralServer(tmp_path / "b", tmp_path / "b.log", CORRAL_EMBEDDED_MODEL="0",
                                      CORRAL_REGISTRY_AUTH=str(auth)))
    try:
        source = f"127.0.0.1:{guarded.port}/library/smollm2:135m"
        pulled = corral_cli("pull", "--insecure", source, host=mirror.url)
        assert pulled.returncode == 0, pulled.stderr
        digests = {m["name"]: m["digest"] for m in mirror.get("/api/tags")["models"]}
        guarded.headers = {"Authorization": f"Bearer {admin}"}
        try:
            original = {m["name"]: m["digest"] for m in guarded.get("/api/tags")["models"]}[MODEL]
        finally:
            guarded.headers = {}
        assert digests[source] == original
    finally:
        mirror.stop()
    log = (tmp_path / "b.log").read_text()
    assert puller not in log
    assert any(r.get("key_name") == "mirror" for r in guarded.log_events("request_finished"))


def test_a_tight_rate_limit_answers_429(guarded: CorralServer, admin: str) -> None:
    tight = new_key(guarded, "tight", "--scope", "read", "--rpm", "2", admin=admin)
    headers = {"Host": f"127.0.0.1:{guarded.port}", "Authorization": f"Bearer {tight}"}
    assert [raw_request(guarded, "GET", "/api/version", headers)[0] for _ in range(2)] == [200, 200]
    status, reply_headers, body = raw_request(guarded, "GET", "/api/version", headers)
    assert status == 429 and 1 <= int(reply_headers["Retry-After"]) <= 30
    assert "2 requests per minute" in json.loads(body)["error"]


def test_a_revoked_key_is_refused_on_its_next_request(guarded: CorralServer, admin: str) -> None:
    doomed = new_key(guarded, "doomed", "--scope", "read", admin=admin)
    client = ollama.Client(host=guarded.url, headers={"Authorization": f"Bearer {doomed}"}, timeout=30)
    assert client.list().models
    revoked = cli(guarded, "keys", "revoke", "doomed", key=admin)
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(ollama.ResponseError) as refused:
        client.list()
    assert refused.value.status_code == 401
    assert "doomed" not in cli(guarded, "keys", "list", key=admin).stdout


def test_no_secret_reaches_any_processs_log(guarded: CorralServer, user: str) -> None:
    """Runs last in this module: by now every key has been created, used and refused."""
    text = guarded.log_path.read_text()
    processes = {json.loads(line).get("process") for line in text.splitlines() if line.startswith("{")}
    assert {"serve", "registry", "gateway", "runner"} <= processes, processes
    assert len(SECRETS) >= 8
    for secret in SECRETS:
        assert secret not in text
        assert secret.removeprefix("corral_") not in text
    finished = [r for r in guarded.log_events("request_finished") if r.get("key_name") == "app"]
    assert finished and all("Authorization" not in json.dumps(r) for r in finished)
    ps = guarded.request("GET", "/api/ps")
    assert ps[0] == 401  # nothing to read without a key, and nothing secret with one:
    guarded.headers = {"Authorization": f"Bearer {user}"}
    try:
        status, body, _ = guarded.request("GET", "/api/ps")
    finally:
        guarded.headers = {}
    assert status == 200 and all(secret not in body.decode() for secret in SECRETS)


def test_required_auth_is_bootstrapped_through_the_registry(tmp_path: Path) -> None:
    """CORRAL_AUTH=required with no key: everything is locked; the operator creates the first
    key straight through the registry's socket, then the API opens to that key."""
    runtime = Path(tempfile.mkdtemp(prefix="corral-"))  # short: unix socket paths are limited
    registry = f"unix:{runtime / 'registry.sock'}"
    server = CorralServer(tmp_path / "models", tmp_path / "serve.log", CORRAL_AUTH="required",
                          CORRAL_REGISTRY_ADDR=registry)
    server.get = lambda path: {"models": [True]} if server.request("GET", "/")[0] == 200 else {}
    try:
        server.start()
        del server.get
        assert server.request("GET", "/api/tags")[0] == 401
        assert server.log_events("auth_required_without_keys")
        assert "unauthorized" in one_error_line(cli(server, "keys", "create", "root", "--scope", "admin"))
        secret = new_key(server, "root", "--scope", "admin", CORRAL_REGISTRY_ADDR=registry)
        listed = cli(server, "keys", "list", CORRAL_REGISTRY_ADDR=registry)
        assert listed.returncode == 0 and "root" in listed.stdout
        assert cli(server, "list", key=secret).returncode == 0
        assert server.request("GET", "/api/tags")[0] == 401
    finally:
        server.stop()
        shutil.rmtree(runtime, ignore_errors=True)
    assert secret not in (tmp_path / "serve.log").read_text()


# -- HTTPS ----------------------------------------------------------------------------------

def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made here with ``cryptography``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    server = CorralServer(tmp_path / "models", tmp_path / "serve.log", tls=trust,
                          CORRAL_TLS_CERT=str(cert), CORRAL_TLS_KEY=str(key)).start()
    try:
        assert server.url.startswith("https://")
        assert MODEL in [m["name"] for m in server.get("/api/tags")["models"]]
        listed = corral_cli("list", host=server.url, SSL_CERT_FILE=str(cert))
        assert listed.returncode == 0 and MODEL in listed.stdout, listed.stderr
        untrusted = corral_cli("list", host=server.url)  # the system CAs do not know this cert
        assert untrusted.returncode == 1 and "Traceback" not in untrusted.stderr
        with ollama.Client(host=server.url, verify=trust, timeout=60) as client:
            assert MODEL in [m.model for m in client.list().models]  # closed: no TLS socket to GC
        plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.request("GET", "/api/tags")
            plain.getresponse()
        plain.close()
    finally:
        server.stop()
