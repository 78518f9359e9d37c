"""The fleet end to end: PostgreSQL, one registry, three gateways behind Debian's nginx.

Each gateway has its own empty cache dir and never reads the registry's store (its
``CORRAL_CACHE_DIR`` is set): every blob it runs comes over the registry's ``ReadBlob`` stream,
verified. Gateway C reaches the registry through ``tests.flip_proxy``, which flips one byte of
the first large blob it relays.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet import Gateway, Nginx, call, start_registry
from tests.e2e.server import alive, descendants
from tests.flip_proxy import FlipProxy

pytestmark = pytest.mark.e2e

MODEL = "fleet-test:latest"
# Long enough (≈10 s here) that B is still streaming when it is killed, whatever the load order.
LONG = {"model": MODEL, "prompt": "Tell me a very long story about a dragon and a ship.",
        "options": {"temperature": 0, "seed": 7, "num_predict": 1500}}
SHORT = {"model": MODEL, "prompt": "Say hello.", "stream": False,
         "options": {"temperature": 0, "seed": 7, "num_predict": 4}}
CREATE = {"model": MODEL, "from": "smollm2:135m", "system": "You answer briefly.", "stream": False}


class Fleet:
    def __init__(self, registry, registry_address, proxy, gateways, nginx) -> None:
        self.registry, self.registry_address, self.proxy = registry, registry_address, proxy
        self.gateways, self.nginx = gateways, nginx

    def by_port(self, upstream: str) -> Gateway:
        return next(g for g in self.gateways.values() if upstream.endswith(f":{g.port}"))


@pytest.fixture(scope="module")
def fleet(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    registry, address = start_registry(root, postgres.create_database("fleet"))
    host, port = address.split(":")
    proxy = FlipProxy(host, int(port), flips=1).start()
    gateways = {name: Gateway(name, root, proxy.address if name == "c" else address)
                for name in "abc"}
    nginx = None
    try:
        for gateway in gateways.values():
            gateway.start()
        for gateway in gateways.values():
            gateway.wait_ready()
        nginx = Nginx(root, [g.port for g in gateways.values()]).start()
        yield Fleet(registry, address, proxy, gateways, nginx)
    finally:
        if nginx is not None:
            nginx.stop()
        for gateway in gateways.values():
            gateway.stop()
        proxy.stop()
        registry.stop()


class Stream(threading.Thread):
    """A streaming /api/generate through nginx, read line by line in the background."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.host, self.port = url.removeprefix("http://").split(":")
        self.upstream = ""
        self.lines: list[dict] = []
        self.error: Exception | None = None
        self.started = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=300)
        try:
            connection.request("POST", "/api/generate", json.dumps(LONG))
            response = connection.getresponse()
            self.upstream = response.getheader("X-Upstream", "")
            self.status = response.status
            self.started.set()
            while line := response.readline():
                if line.strip():
                    self.lines.append(json.loads(line))
            if not self.lines or not self.lines[-1].get("done"):
                raise ConnectionError("stream ended without its final object")
        except Exception as exc:  # noqa: BLE001 - the point of the kill: record how the stream ended
            self.error = exc
        finally:
            self.started.set()
            connection.close()

    @property
    def completed(self) -> bool:
        return self.error is None and bool(self.lines) and self.lines[-1].get("done") is True


def test_a_model_created_on_one_gateway_runs_on_another_with_blobs_fetched_and_verified(
        fleet: Fleet) -> None:
    a, c = fleet.gateways["a"], fleet.gateways["c"]
    status, body, _ = call(f"{a.url}/api/create", "POST", CREATE)
    assert (status, body) == (200, {"status": "success"})
    status, body, _ = call(f"{c.url}/api/generate", "POST", SHORT)
    assert status == 200 and body["done"] is True and body["eval_count"] > 0, body

    # C fetched the weights into its own cache: the first copy was corrupted in transit by the
    # proxy and refused, the second verified. Nothing was read from the registry's store.
    weights = call(f"{c.url}/api/show", "POST", {"model": MODEL})[1]["modelfile"]
    registry_path = next(line.split(" ", 1)[1] for line in weights.splitlines()
                         if line.startswith("FROM /"))
    digest = "sha256:" + Path(registry_path).name.split("-", 1)[1]
    assert fleet.proxy.flipped == 1
    (refused,) = c.events("blob_fetch_refused")
    assert refused["digest"] == digest and "digest mismatch" in refused["error"]
    fetched = [e for e in c.events("blob_fetched") if e["digest"] == digest]
    assert len(fetched) == 1 and fetched[0]["verified"] is True
    cached = Path(fetched[0]["path"])
    assert cached.parent == c.cache_dir and cached != Path(registry_path)
    assert "sha256:" + hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in c.cache_dir.iterdir()) == [cached.name]
    (spawned,) = [e for e in c.events("runner_spawned") if e["model"] == MODEL]
    assert any(e["stage"] == "fetch" for e in c.events("model_load_progress"))
    runner_args = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                   for pid in descendants(c.process.pid)]
    assert any(str(cached).encode() in args for args in runner_args), "runner maps C's copy"
    assert spawned["runner_pid"] in descendants(c.process.pid)


def test_killing_a_gateway_mid_stream_loses_only_its_stream(fleet: Fleet) -> None:
    call(f"{fleet.gateways['a'].url}/api/create", "POST", CREATE)  # the same model: a no-op
    streams = []
    for _ in range(3):  # round robin: one stream per gateway
        stream = Stream(fleet.nginx.url)
        stream.start()
        stream.started.wait(300)
        streams.append(stream)
    by_gateway = {fleet.by_port(s.upstream).name: s for s in streams}
    assert set(by_gateway) == {"a", "b", "c"}, [s.upstream for s in streams]
    b, victim = fleet.gateways["b"], by_gateway["b"]
    deadline = time.monotonic() + 240
    while len(victim.lines) < 3 and victim.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(victim.lines) >= 3 and not victim.lines[-1].get("done"), "B is mid-stream"
    runners = [p for p in descendants(b.process.pid) if alive(p)]
    os.kill(b.process.pid, signal.SIGKILL)
    for stream in streams:
        stream.join(300)
    assert victim.error is not None and not victim.completed  # B's stream ends in an error
    assert by_gateway["a"].completed and by_gateway["c"].completed  # the others lose nothing

    served = []
    for _ in range(6):
        status, body, headers = call(f"{fleet.nginx.url}/api/generate", "POST", SHORT)
        assert status == 200 and body["done"] is True, body
        served.append(fleet.by_port(headers["X-Upstream"].split(",")[-1].strip()).name)
    assert set(served) == {"a", "c"}, served  # nginx moved B's share to A and C
    deadline = time.monotonic() + 10
    while any(alive(p) for p in runners) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in runners), "B's runner followed it"


def test_a_model_deleted_through_one_gateway_is_gone_everywhere(fleet: Fleet) -> None:
    a, c = fleet.gateways["a"], fleet.gateways["c"]
    call(f"{a.url}/api/create", "POST", CREATE)
    assert call(f"{c.url}/api/generate", "POST", SHORT)[0] == 200  # loaded on C
    assert call(f"{a.url}/api/delete", "DELETE", {"model": MODEL})[0] == 200
    for url in (a.url, c.url, fleet.nginx.url):
        names = [m["name"] for m in call(f"{url}/api/tags", "GET")[1]["models"]]
        assert MODEL not in names and "smollm2:135m" in names
    status, body, _ = call(f"{c.url}/api/generate", "POST", SHORT)
    assert (status, body) == (404, {"error": f"model '{MODEL}' not found"})
    status, body, _ = call(f"{fleet.nginx.url}/api/show", "POST", {"model": MODEL})
    assert status == 404
