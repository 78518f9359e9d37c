"""Models as an OCI image layout in a tar: what ``corral save`` writes and ``corral load`` reads.

    oci-layout                 {"imageLayoutVersion": "1.0.0"}
    blobs/sha256/<hex>         every layer, config and manifest, by digest, once
    index.json                 one descriptor per model (its manifest), named by annotations

Manifests are kept byte for byte (their sha256 is the model id) with Ollama's media types, so a
loaded model is the same model. Names travel as ``io.containerd.image.name`` (the full
``host/namespace/model:tag``, as containerd and ``docker save`` write it) plus
``org.opencontainers.image.ref.name`` (the tag). Reading verifies everything before anything is
imported: the layout, every manifest, and the size and sha256 of every blob a manifest names;
a truncated or corrupted archive raises ``ArchiveError`` naming what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

LAYOUT = {"imageLayoutVersion": "1.0.0"}
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20

Progress = Callable[[str, str, int, int], None]  # (verb, digest, total, completed)


class ArchiveError(Exception):
    """The archive is not a complete, intact model archive; nothing should be imported."""


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class ArchivedModel:
    """One model in an archive: its full name, manifest bytes and the blobs those name."""

    name: str
    manifest: bytes
    blobs: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def manifest_blobs(content: bytes) -> tuple[Blob, ...]:
    """The config and layers a manifest names (each digest once); ``ArchiveError`` if malformed."""
    try:
        raw = json.loads(content)
        found: dict[str, Blob] = {}
        for descriptor in (raw["config"], *raw["layers"]):
            digest, size = str(descriptor["digest"]), int(descriptor["size"])
            _hex(digest)
            found.setdefault(digest, Blob(digest, size))
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"malformed manifest: {exc}") from exc
    return tuple(found.values())


class ArchiveWriter:
    """Writes an OCI layout tar; blobs stream in and are hashed as they go."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._tar = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT)
        self._written: set[str] = set()
        self._index: list[dict[str, Any]] = []
        self._add_bytes("oci-layout", json.dumps(LAYOUT).encode())

    def has(self, digest: str) -> bool:
        return digest in self._written

    def add_blob(self, blob: Blob, source: IO[bytes], progress: Progress | None = None) -> None:
        """Copy ``blob.size`` bytes of ``source`` in; ``ArchiveError`` unless they hash to
        ``blob.digest`` (the archive must then be thrown away: the member is already out)."""
        info = tarfile.TarInfo(f"blobs/sha256/{_hex(blob.digest)}")
        info.size, info.mode = blob.size, 0o644
        reader = _HashingReader(source, blob, progress, "saving")
        try:
            self._tar.addfile(info, reader)
        except OSError as exc:
            raise ArchiveError(f"blob {blob.digest}: {exc}") from exc
        reader.check()
        self._written.add(blob.digest)

    def add_model(self, name: str, manifest: bytes, media_type: str) -> None:
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        if digest not in self._written:
            self._add_bytes(f"blobs/sha256/{_hex(digest)}", manifest)
            self._written.add(digest)
        tag = name.rpartition(":")[2]
        self._index.append({"mediaType": media_type, "digest": digest, "size": len(manifest),
                            "annotations": {NAME_ANNOTATION: name, REF_ANNOTATION: tag}})

    def close(self) -> None:
        """Write ``index.json`` last (an archive cut short has none) and end the tar."""
        index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": self._index}
        self._add_bytes("index.json", json.dumps(index, indent=2).encode())
        self._tar.close()

    def abort(self) -> None:
        """Give up: end the tar stream without an index (the caller deletes the file)."""
        try:
            self._tar.close()
        except (OSError, ValueError, tarfile.TarError):
            pass

    def _add_bytes(self, path: str, data: bytes) -> None:
        info = tarfile.TarInfo(path)
        info.size, info.mode = len(data), 0o644
        self._tar.addfile(info, io.BytesIO(data))


class ArchiveReader:
    """Reads and verifies an OCI layout tar (random access: a file on disk)."""

    def __init__(self, path: str) -> None:
        try:
            self._tar = tarfile.open(path, mode="r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"not a readable tar archive: {exc}") from exc
        try:
            self._members = {_clean(m.name): m for m in self._tar.getmembers() if m.isfile()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            self._tar.close()  # a truncated archive fails here, after the file was opened
            raise ArchiveError(f"not a readable tar archive: {exc}") from exc

    def close(self) -> None:
        self._tar.close()

    def verify(self, progress: Progress | None = None) -> list[ArchivedModel]:
        """Every model in the archive, after checking every byte they need."""
        layout = self._json("oci-layout")
        if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
            raise ArchiveError("oci-layout: not an OCI image layout 1.0.0")
        index = self._json("index.json")
        entries = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ArchiveError("index.json lists no models")
        models = [self._model(entry) for entry in entries]
        checked: set[str] = set()
        for model in models:
            for blob in model.blobs:
                if blob.digest not in checked:
                    self._check_blob(blob, progress)
                    checked.add(blob.digest)
        return models

    def open_blob(self, digest: str) -> IO[bytes]:
        """A verified blob's bytes, to upload."""
        fileobj = self._tar.extractfile(self._member(digest))
        assert fileobj is not None  # members are regular files
        return fileobj

    def _model(self, entry: Any) -> ArchivedModel:
        try:
            digest, size = str(entry["digest"]), int(entry["size"])
            annotations = entry.get("annotations") or {}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArchiveError(f"index.json: malformed entry: {exc}") from exc
        name = annotations.get(NAME_ANNOTATION) or annotations.get(REF_ANNOTATION)
        if not name:
            raise ArchiveError(f"index.json: manifest {digest} has no model name")
        manifest = self._read(Blob(digest, size))
        return ArchivedModel(name=str(name), manifest=manifest, blobs=manifest_blobs(manifest))

    def _check_blob(self, blob: Blob, progress: Progress | None) -> None:
        source = self._tar.extractfile(self._member(blob.digest))
        reader = _HashingReader(source, blob, progress, "verifying")
        try:
            while reader.read(CHUNK):
                pass
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"blob {blob.digest}: {exc}") from exc
        reader.check()

    def _read(self, blob: Blob) -> bytes:
        member = self._member(blob.digest)
        if member.size != blob.size:
            raise ArchiveError(f"blob {blob.digest} is {member.size} bytes, expected {blob.size}")
        data = self._bytes(member)
        if "sha256:" + hashlib.sha256(data).hexdigest() != blob.digest:
            raise ArchiveError(f"blob {blob.digest} is corrupt (its sha256 does not match)")
        return data

    def _member(self, digest: str) -> tarfile.TarInfo:
        member = self._members.get(f"blobs/sha256/{_hex(digest)}")
        if member is None:
            raise ArchiveError(f"blob {digest} is missing from the archive")
        return member

    def _json(self, path: str) -> Any:
        member = self._members.get(path)
        if member is None:
            raise ArchiveError(f"{path} is missing: not an OCI image layout")
        try:
            return json.loads(self._bytes(member))
        except ValueError as exc:
            raise ArchiveError(f"{path}: {exc}") from exc

    def _bytes(self, member: tarfile.TarInfo) -> bytes:
        try:
            handle = self._tar.extractfile(member)
            assert handle is not None, "_members holds regular files only"
            data = handle.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"{member.name}: {exc}") from exc
        if len(data) != member.size:
            raise ArchiveError(f"{member.name}: truncated")
        return data


class _HashingReader:
    """Reads at most ``blob.size`` bytes from ``source``, hashing and reporting progress."""

    def __init__(self, source: IO[bytes] | None, blob: Blob, progress: Progress | None,
                 verb: str) -> None:
        self._source, self._blob, self._progress, self._verb = source, blob, progress, verb
        self._hasher, self._done = hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        left = self._blob.size - self._done
        if self._source is None or left <= 0:
            return b""
        chunk = self._source.read(left if n < 0 else min(n, left))
        self._hasher.update(chunk)
        self._done += len(chunk)
        if self._progress is not None:
            self._progress(self._verb, self._blob.digest, self._blob.size, self._done)
        return chunk

    def check(self) -> None:
        if self._done != self._blob.size:
            raise ArchiveError(f"blob {self._blob.digest} is truncated ({self._done} of "
                               f"{self._blob.size} bytes)")
        if "sha256:" + self._hasher.hexdigest() != self._blob.digest:
            raise ArchiveError(f"blob {self._blob.digest} is corrupt (its sha256 does not match)")


def _hex(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm != "sha256" or len(hex_part) != 64 or not all(
            c in "0123456789abcdef" for c in hex_part):
        raise ArchiveError(f"invalid digest {digest!r}")
    return hex_part


def _clean(name: str) -> str:
    return name.removeprefix("./")


def unique_blobs(models: Iterable[ArchivedModel]) -> list[Blob]:
    """Every blob the models need, each once, in order."""
    seen: dict[str, Blob] = {}
    for model in models:
        for blob in model.blobs:
            seen.setdefault(blob.digest, blob)
    return list(seen.values())
