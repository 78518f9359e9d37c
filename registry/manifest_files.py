"""Ollama's manifest files: ``<models>/manifests/<host>/<namespace>/<model>/<tag>``.

These files are the interchange format between Corral and Ollama sharing one store: Ollama
lists, runs and prunes by them, so every blob a manifest file names is in use whatever our
database says. The tree is found as Ollama finds it, with a four-level glob; files at any other
depth are not manifests. Writes go to a temp file at the tree's top level (outside the glob, so
neither Ollama nor our scan ever mistakes one for a manifest) and are renamed into place.
Every method blocks: call them in a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from registry.blobs import digest_of
from registry.manifests import Manifest
from services.atomic_files import TEMP_PREFIX, publish, sync_file, temp_path
from services.errors import InvalidModelNameError
from services.names import ModelName, parse_name

MANIFESTS_DIRNAME = "manifests"

log = structlog.get_logger()


@dataclass(frozen=True)
class ManifestFile:
    """One parsed manifest file: its name (from its path), exact bytes and mtime."""

    name: ModelName
    path: Path
    content: bytes
    mtime: float
    manifest: Manifest

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the file's bytes: the model id Ollama shows."""
        return digest_of(self.content)


@dataclass(frozen=True)
class ManifestScan:
    """Every manifest file found, and every file at manifest depth that could not be read."""

    files: list[ManifestFile] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)

    def referenced(self) -> set[str]:
        """Every blob digest some manifest file uses, as a layer or as its config."""
        return {d.digest for f in self.files for d in (f.manifest.config, *f.manifest.layers)}


class ManifestTree:
    """The ``manifests/`` directory of one store."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: ModelName) -> Path:
        """Where the manifest of ``name`` lives, in the name's own casing (valid names are
        safe path components: no ``/``, none starts with ``.``)."""
        return self.root / name.host / name.namespace / name.model / name.tag

    def candidates(self) -> list[Path]:
        """Every file four levels down (Ollama's ``manifests/*/*/*/*``), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(path for path in self.root.glob("*/*/*/*") if not path.is_dir())

    def scan(self) -> ManifestScan:
        """Read and parse every manifest file; unreadable ones are reported, not skipped
        silently, so callers can refuse to prune while one exists (as Ollama does)."""
        scan = ManifestScan()
        for path in self.candidates():
            try:
                scan.files.append(self.read(path))
            except (OSError, ValueError, InvalidModelNameError) as exc:
                scan.errors.append((path, str(exc) or type(exc).__name__))
        return scan

    def read(self, path: Path) -> ManifestFile:
        """Parse one manifest file; ``ValueError``/``InvalidModelNameError``/``OSError``."""
        name = self.name_of(path)
        with open(path, "rb") as f:
            content = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
        return ManifestFile(name=name, path=path, content=content, mtime=mtime,
                            manifest=Manifest.parse(content))

    def name_of(self, path: Path) -> ModelName:
        """The model name a manifest path spells (``InvalidModelNameError`` when invalid)."""
        host, namespace, model, tag = path.relative_to(self.root).parts
        name = parse_name(f"{host}/{namespace}/{model}:{tag}")
        if (name.host, name.namespace, name.model, name.tag) != (host, namespace, model, tag):
            raise InvalidModelNameError(f"invalid manifest path {path}")
        return name

    def write(self, name: ModelName, content: bytes) -> Path:
        """Write ``name``'s manifest atomically (temp file, fsync, rename); return its path."""
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = temp_path(self.root)
        try:
            with open(tmp, "xb") as f:
                f.write(content)
                sync_file(f)
            publish(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def remove(self, name: ModelName) -> int:
        """Delete every manifest file of ``name`` (names match in any casing, as in Ollama) and
        the directories that leaves empty; return how many files went."""
        key = name.key
        removed = 0
        for path in self.candidates():
            try:
                if self.name_of(path).key != key:
                    continue
            except InvalidModelNameError:
                continue
            path.unlink(missing_ok=True)
            removed += 1
            self._remove_empty_parents(path)
        return removed

    def _remove_empty_parents(self, path: Path) -> None:
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()  # only ever succeeds on an empty directory
            except OSError:
                break
            parent = parent.parent

    def remove_stale_temp_files(self) -> int:
        """Delete temp files an interrupted write left at the top of the tree."""
        if not self.root.is_dir():
            return 0
        stale = [p for p in self.root.iterdir() if p.name.startswith(TEMP_PREFIX) and p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        """A cheap fingerprint of the tree (paths, sizes, mtimes): changes when any manifest
        file is added, removed or rewritten, including Ollama's in-place rewrites."""
        found = []
        for path in self.candidates():
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((str(path), stat.st_size, stat.st_mtime_ns))
        return tuple(found)
