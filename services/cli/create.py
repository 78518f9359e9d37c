"""``corral create``: parse a Modelfile locally, upload the files it names as blobs, POST /api/create.

Like Ollama's client: FROM/ADAPTER/DRAFT paths are taken relative to the Modelfile's folder
(``~`` expands), hashed here, uploaded only when the server lacks the blob (``HEAD`` then
``POST /api/blobs/sha256:<hex>``, streamed), and sent as ``files``/``adapters`` maps of
file name to digest; a FROM that is no path is a model name — or, beyond Ollama, a blob
digest already on the server (``FROM sha256:<hex>``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from services.api_client import ApiClient, ApiError
from services.atomic_files import file_sha256
from services.cli.parser import Invocation, UsageError
from services.cli.progress import ProgressDisplay
from services.errors import InvalidRequestError
from services.modelfile import Modelfile, parse_modelfile
from services.names import is_valid_name

_DIGEST = re.compile(r"@?sha256[:-]([0-9a-fA-F]{64})")


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks."""
    return file_sha256(path)[0]


def expand_path(arg: str, base: Path) -> Path:
    """Ollama's expandPath: absolute stays, ``~``/``~user`` expand, the rest joins ``base``."""
    if arg.startswith("~"):
        return Path(os.path.expanduser(arg)).resolve()
    return (base / arg).resolve() if not os.path.isabs(arg) else Path(arg).resolve()


def model_files(path: Path) -> list[Path]:
    """The files a FROM/ADAPTER path stands for: itself, or a folder's GGUF files."""
    if path.is_file():
        return [path]
    found = sorted(path.glob("*.gguf")) or sorted(path.glob("*.bin"))
    if not found:
        raise ApiError("no Modelfile or safetensors files found")
    return found


def request_file_names(paths: list[Path]) -> dict[Path, str]:
    """Base names, or paths relative to the files' common folder when there are several."""
    if len(paths) < 2:
        return {p: p.name for p in paths}
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    return {p: p.relative_to(root).as_posix() for p in paths}


class CreatePlan:
    """The /api/create request built from a Modelfile, plus the local files to upload."""

    def __init__(self, modelfile: Modelfile, base: Path) -> None:
        self.request: dict[str, Any] = {}
        self.uploads: dict[str, dict[Path, str]] = {"files": {}, "adapters": {}, "draft_files": {}}
        self.blob_refs: dict[str, str] = {}
        for cmd in modelfile.commands:
            self._command(cmd.name, cmd.args, base)
        self._fields(modelfile)

    def _command(self, name: str, args: str, base: Path) -> None:
        key = {"from": "files", "adapter": "adapters", "draft": "draft_files"}.get(name)
        if key is None:
            return
        path = expand_path(args, base)
        if path.exists():
            self.uploads[key].update({p: "" for p in model_files(path)})
        elif name == "from" and (match := _DIGEST.fullmatch(args)):
            self.blob_refs["model.gguf"] = f"sha256:{match.group(1).lower()}"
        elif name == "from":
            self.request["from"] = args
        else:
            raise ApiError(f"stat {path}: no such file or directory")

    def _fields(self, modelfile: Modelfile) -> None:
        for name in ("template", "system", "renderer", "parser", "requires"):
            value = getattr(modelfile, name)
            if value is not None:
                self.request[name] = value
        if modelfile.licenses:
            self.request["license"] = list(modelfile.licenses)
        if modelfile.parameters:
            self.request["parameters"] = modelfile.parameters
        if modelfile.messages:
            self.request["messages"] = [{"role": r, "content": c} for r, c in modelfile.messages]

    def hash_files(self) -> None:
        for files in self.uploads.values():
            for path in files:
                files[path] = file_digest(path)


def upload_blob(client: ApiClient, path: Path, digest: str, display: ProgressDisplay) -> None:
    """Send one file unless the server already has its blob, showing ``copying file`` progress."""
    display.set_status(f"copying file {digest} 0%")
    if client.head(f"/api/blobs/{digest}") != 200:
        size = path.stat().st_size
        with open(path, "rb") as source:
            client.upload(f"/api/blobs/{digest}", source, size, lambda sent: display.rename_status(
                f"copying file {digest} {100 * sent // max(size, 1)}%"))
    display.rename_status(f"copying file {digest} 100%")


def read_modelfile(inv: Invocation) -> tuple[str, Path]:
    """The Modelfile text and its folder; no Modelfile at all means ``FROM .`` (Ollama's rule)."""
    given = inv.flags["file"]
    path = Path(given or "Modelfile").absolute()
    if path.is_file():
        return path.read_text(encoding="utf-8", errors="replace"), path.parent
    if given:
        raise UsageError("specified Modelfile wasn't found")
    return "FROM .\n", Path.cwd()


def cmd_create(inv: Invocation, client: ApiClient) -> int:
    name = inv.args[0]
    if not is_valid_name(name):
        raise UsageError(f"invalid model name: {name}")
    text, base = read_modelfile(inv)
    try:
        modelfile = parse_modelfile(text)
    except InvalidRequestError as exc:
        raise UsageError(exc.message) from None
    for warning in modelfile.warnings:
        print(f"warning: {warning}")
    with ProgressDisplay(verb="pulling") as display:
        display.set_status("gathering model components")
        try:
            plan = CreatePlan(modelfile, base)
        except InvalidRequestError as exc:
            raise UsageError(exc.message) from None
        plan.hash_files()
        request = {"model": name, **plan.request}
        for key, files in plan.uploads.items():
            names = request_file_names(list(files))
            for path, digest in files.items():
                upload_blob(client, path, digest, display)
            if files:
                request[key] = {names[p]: d for p, d in files.items()}
        if plan.blob_refs:
            _check_blobs(client, plan.blob_refs)
            request.setdefault("files", {}).update(plan.blob_refs)
        if inv.flags["quantize"]:
            request["quantize"] = inv.flags["quantize"]
        for obj in client.stream("/api/create", request):
            display.update(obj)
    return 0


def _check_blobs(client: ApiClient, refs: dict[str, str]) -> None:
    for digest in refs.values():
        if client.head(f"/api/blobs/{digest}") != 200:
            raise ApiError(f"blob {digest} not found on the server")
