"""The OCI image layout archive of ``corral save``/``load``: what it writes and what it refuses."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from services.oci_archive import ArchiveError, ArchiveReader, ArchiveWriter, Blob, manifest_blobs

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def model(weights: bytes, config: bytes) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2,
                       "config": {"mediaType": "c", "digest": sha(config), "size": len(config)},
                       "layers": [{"mediaType": "m", "digest": sha(weights),
                                   "size": len(weights)}]}).encode()


def write(path: Path, models: dict[str, tuple[bytes, bytes]]) -> None:
    with open(path, "wb") as f:
        writer = ArchiveWriter(f)
        for name, (weights, config) in models.items():
            manifest = model(weights, config)
            for data in (weights, config):
                blob = Blob(sha(data), len(data))
                if not writer.has(blob.digest):
                    writer.add_blob(blob, io.BytesIO(data))
            writer.add_model(name, manifest, SCHEMA2)
        writer.close()


def test_round_trip_shares_blobs_and_keeps_names(tmp_path: Path) -> None:
    weights = b"w" * 5000
    write(tmp_path / "a.tar", {"registry.ollama.ai/library/a:latest": (weights, b"{}"),
                               "h:5000/ns/b:v1": (weights, b'{"x":1}')})
    seen = []
    reader = ArchiveReader(str(tmp_path / "a.tar"))
    models = reader.verify(lambda *args: seen.append(args))
    assert [m.name for m in models] == ["registry.ollama.ai/library/a:latest", "h:5000/ns/b:v1"]
    assert models[0].manifest == model(weights, b"{}")
    assert reader.open_blob(sha(weights)).read() == weights
    reader.close()
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
    assert names.count(f"blobs/sha256/{sha(weights)[7:]}") == 1  # stored once
    assert names[0] == "oci-layout" and names[-1] == "index.json"
    assert {args[0] for args in seen} == {"verifying"}


def test_a_blob_that_does_not_match_its_digest_is_refused_while_writing(tmp_path: Path) -> None:
    with open(tmp_path / "x.tar", "wb") as f:
        writer = ArchiveWriter(f)
        with pytest.raises(ArchiveError, match="corrupt"):
            writer.add_blob(Blob(sha(b"good"), 4), io.BytesIO(b"evil"))
        with pytest.raises(ArchiveError, match="truncated|unexpected end"):
            writer.add_blob(Blob(sha(b"longer"), 6), io.BytesIO(b"lon"))
        writer.abort()


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_blob", "no_index", "not_tar",
                                    "index_is_dir"])
def test_damaged_archives_are_refused(tmp_path: Path, damage: str) -> None:
    good = tmp_path / "good.tar"
    write(good, {"m:latest": (b"w" * 20000, b"{}")})
    data = bytearray(good.read_bytes())
    bad = tmp_path / "bad.tar"
    if damage == "flip":
        with tarfile.open(good) as tar:
            member = max(tar.getmembers(), key=lambda m: m.size)
        data[member.offset_data + 10] ^= 1
        bad.write_bytes(bytes(data))
    elif damage == "truncate":
        bad.write_bytes(bytes(data[:len(data) // 2]))
    elif damage == "not_tar":
        bad.write_bytes(b"hello")
    else:
        with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
            for member in src.getmembers():
                skip = (member.name == "index.json" if damage in ("no_index", "index_is_dir")
                        else member.size == 20000)
                if damage == "index_is_dir" and member.name == "index.json":
                    dst.addfile(_directory("index.json"))
                if not skip:
                    dst.addfile(member, src.extractfile(member))
    with pytest.raises(ArchiveError):
        reader = ArchiveReader(str(bad))
        try:
            reader.verify()
        finally:
            reader.close()


def _directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_manifest_blobs_rejects_bad_digests() -> None:
    with pytest.raises(ArchiveError):
        manifest_blobs(b'{"config": {"digest": "sha256:../../x", "size": 1}, "layers": []}')
    assert manifest_blobs(model(b"a", b"b")) == (Blob(sha(b"b"), 1), Blob(sha(b"a"), 1))
