"""Pull throughput: Corral's ``/api/pull`` from a local ``docker-registry`` (the Debian package,
distribution 2.x) against a plain copy of the same bytes, and against the verification floor.

The harness pushes the model itself with the registry's v2 HTTP API (a manifest built exactly as
Corral's registry builds one for a GGUF), so the pull measurement does not depend on push.

The floor is what any downloader that verifies must do at least: an HTTP GET of the same blobs to
disk plus ``sha256sum`` of those bytes, one after the other. A pull hashes while it receives, so
it can reach the floor (and beat it on more cores). With a small model fixed costs (manifest,
config, database transaction, GGUF header) dominate, so the floor is measured on a synthetic
GGUF of at least 1 GB (``synthetic_gguf``): a valid header and one tensor of filler bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.models import Model, NotAvailable, sha256_file
from bench.servers import Corral, free_port
from registry.gguf_kv import read_gguf_info
from registry.manifests import (CONFIG_MEDIA_TYPE, MODEL_MEDIA_TYPE, Descriptor, Manifest,
                                gguf_config)

CHUNK = 1 << 20


def _http(base: str, method: str, path: str, body=None, headers=None) -> http.client.HTTPResponse:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    conn.request(method, path, body, headers or {})
    return conn.getresponse()


class DockerRegistry:
    """``docker-registry serve`` with filesystem storage on a free loopback port."""

    def __init__(self, root: Path) -> None:
        self.binary = shutil.which("docker-registry")
        if not self.binary:
            raise NotAvailable("docker-registry is not installed (apt-get install docker-registry)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> DockerRegistry:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n")
        log = open(self.root / "registry.log", "ab")
        self.process = subprocess.Popen([self.binary, "serve", str(config)], stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if _http(self.url, "GET", "/v2/").status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise NotAvailable("docker-registry did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def push_blob(self, repo: str, digest: str, path: Path | None = None, data: bytes = b"") -> None:
        if _http(self.url, "HEAD", f"/v2/{repo}/blobs/{digest}").status == 200:
            return
        resp = _http(self.url, "POST", f"/v2/{repo}/blobs/uploads/")
        location = resp.getheader("Location")
        if resp.status != 202 or not location:
            raise RuntimeError(f"upload start: {resp.status}")
        target = urlsplit(location)
        sep = "&" if target.query else "?"
        size = path.stat().st_size if path else len(data)
        with open(path, "rb") if path else contextlib.nullcontext(data) as body:
            resp = _http(self.url, "PUT", f"{target.path}?{target.query}{sep}digest={digest}",
                         body, {"Content-Length": str(size),
                                "Content-Type": "application/octet-stream"})
        if resp.status != 201:
            raise RuntimeError(f"blob upload: {resp.status} {resp.read()[:200]!r}")

    def push_model(self, model: Model, repo: str, tag: str) -> Manifest:
        """Upload ``model``'s GGUF, its config and a schema2 manifest; returns the manifest."""
        layer_digest = "sha256:" + sha256_file(model.path)
        config = gguf_config(read_gguf_info(model.path))
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        self.push_blob(repo, layer_digest, path=model.path)
        self.push_blob(repo, config_digest, data=config)
        manifest = Manifest(config=Descriptor(CONFIG_MEDIA_TYPE, config_digest, len(config)),
                            layers=(Descriptor(MODEL_MEDIA_TYPE, layer_digest, model.size),))
        resp = _http(self.url, "PUT", f"/v2/{repo}/manifests/{tag}", manifest.to_bytes(),
                     {"Content-Type": manifest.media_type})
        if resp.status != 201:
            raise RuntimeError(f"manifest upload: {resp.status} {resp.read()[:200]!r}")
        return manifest

    def download(self, repo: str, digest: str, dest: Path) -> None:
        """A plain HTTP GET of one blob into ``dest`` (what any downloader does, minus hashing)."""
        resp = _http(self.url, "GET", f"/v2/{repo}/blobs/{digest}")
        if resp.status == 307:  # redirect to storage is not used by the filesystem driver
            raise RuntimeError("unexpected redirect")
        with open(dest, "wb") as out:
            while chunk := resp.read(CHUNK):
                out.write(chunk)


def corral_pull(server: Corral, name: str) -> float:
    """Seconds for ``/api/pull`` (insecure, streamed) from request to its ``success`` line."""
    started = time.perf_counter()
    resp = _http(server.url, "POST", "/api/pull", json.dumps(
        {"model": name, "insecure": True, "stream": True}), {"Content-Type": "application/json"})
    if resp.status != 200:
        raise NotAvailable(f"POST /api/pull answered {resp.status} {resp.read()[:160]!r}")
    last: dict = {}
    while line := resp.readline():
        if line.strip():
            last = json.loads(line)
            if "error" in last:
                raise NotAvailable(f"/api/pull failed: {last['error']}")
    if last.get("status") != "success":
        raise NotAvailable(f"/api/pull ended with {last!r}")
    return time.perf_counter() - started


def measure(model: Model, scratch: Path, reps: int, log) -> dict[str, list[float]]:
    """Bytes/s of Corral's pull, of an HTTP download of the same blobs and of a file copy."""
    out: dict[str, list[float]] = {"pull": [], "http": [], "cp": []}
    with DockerRegistry(scratch / "docker-registry") as registry:
        repo, tag = f"library/{model.key}", "bench"
        manifest = registry.push_model(model, repo, tag)
        total = manifest.size
        blobs = [manifest.config, *manifest.layers]
        name = f"127.0.0.1:{registry.port}/{repo}:{tag}"
        for i in range(reps):
            dest = scratch / f"copy-{i}"
            dest.mkdir()
            started = time.perf_counter()
            for blob in blobs:
                registry.download(repo, blob.digest, dest / blob.digest.replace(":", "-"))
            out["http"].append(total / (time.perf_counter() - started))
            started = time.perf_counter()
            shutil.copyfile(model.path, dest / "cp")
            out["cp"].append(model.size / (time.perf_counter() - started))
            shutil.rmtree(dest)
            server = Corral(scratch / f"pull-{i}", scratch / f"pull-{i}.log", empty=True).start()
            try:
                out["pull"].append(total / corral_pull(server, name))
            finally:
                server.stop()
                shutil.rmtree(scratch / f"pull-{i}", ignore_errors=True)
            log(f"  pull round {i + 1}/{reps}: " + ", ".join(
                f"{k} {v[-1] / 1e6:.0f} MB/s" for k, v in out.items()))
    return out


def synthetic_gguf(path: Path, size: int) -> Model:
    """A valid GGUF of about ``size`` bytes: a llama header and one tensor of filler bytes
    (a random megabyte repeated: nothing on the way can compress or deduplicate it cheaply)."""
    import gguf
    import numpy as np

    if not path.is_file() or path.stat().st_size < size:
        path.parent.mkdir(parents=True, exist_ok=True)
        n = size // CHUNK * CHUNK
        writer = gguf.GGUFWriter(path, "llama")
        writer.add_context_length(2048)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_tensor_info("filler", (n,), np.dtype(np.int8), n, gguf.GGMLQuantizationType.I8)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        writer.close()
        block = os.urandom(CHUNK)
        with open(path, "ab") as out:
            pad = -out.tell() % 32  # tensor data starts at GGUF's default alignment
            out.write(b"\0" * pad)
            for _ in range(n // CHUNK):
                out.write(block)
    return Model("synthetic", f"synthetic GGUF {path.stat().st_size / 1e9:.2f} GB", path,
                 "synthetic:bench")


def floor(registry: DockerRegistry, repo: str, blobs, dest: Path) -> float:
    """Seconds for the verification floor: HTTP GET of ``blobs`` to disk, then sha256sum."""
    dest.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files = []
    for blob in blobs:
        files.append(dest / blob.digest.replace(":", "-"))
        registry.download(repo, blob.digest, files[-1])
    done = subprocess.run(["sha256sum", *map(str, files)], capture_output=True, text=True,
                          check=True)
    elapsed = time.perf_counter() - started
    for blob, line in zip(blobs, done.stdout.splitlines()):
        if "sha256:" + line.split()[0] != blob.digest:
            raise RuntimeError(f"floor: {blob.digest} did not verify")
    shutil.rmtree(dest)
    return elapsed


def measure_floor(model: Model, scratch: Path, reps: int, log) -> dict[str, list[float]]:
    """Bytes/s of Corral's pull and of the verification floor for the same blobs."""
    out: dict[str, list[float]] = {"pull": [], "floor": [], "size": [float(model.size)]}
    with DockerRegistry(scratch / "docker-registry") as registry:
        repo, tag = f"library/{model.key}", "bench"
        manifest = registry.push_model(model, repo, tag)
        blobs = [manifest.config, *manifest.layers]
        name = f"127.0.0.1:{registry.port}/{repo}:{tag}"
        for i in range(reps):
            out["floor"].append(manifest.size / floor(registry, repo, blobs,
                                                      scratch / f"floor-{i}"))
            server = Corral(scratch / f"pull-{i}", scratch / f"pull-{i}.log", empty=True).start()
            try:
                out["pull"].append(manifest.size / corral_pull(server, name))
            finally:
                server.stop()
                shutil.rmtree(scratch / f"pull-{i}", ignore_errors=True)
            log(f"  pull vs floor round {i + 1}/{reps}: pull {out['pull'][-1] / 1e6:.0f} MB/s, "
                f"floor {out['floor'][-1] / 1e6:.0f} MB/s")
    return out
