"""Store-keeping commands Ollama lacks: ``rescan``, ``verify``, ``save`` and ``load``.

``save`` fetches each manifest byte for byte and each blob over ``/v2/`` (the server checks
the digest as it streams; we check again) into an OCI image layout tar, written under a temp
name and renamed only when complete. ``load`` verifies the whole archive before it sends a
byte, then uploads the missing blobs (the server verifies each) and stores the manifests last,
so a bad archive imports nothing and a model never appears before all of its blobs.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from services.api_client import ApiClient
from services.cli.parser import Invocation, UsageError
from services.cli.progress import ProgressDisplay
from services.cli_format import human_bytes
from services.names import ModelName, is_valid_name, parse_name
from services.oci_archive import (
    ArchiveError, ArchiveReader, ArchiveWriter, Blob, manifest_blobs, unique_blobs,
)

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


def cmd_rescan(_inv: Invocation, client: ApiClient) -> int:
    """Sync the server's index with the manifest files on disk; print what changed."""
    reply = client.request("POST", "/api/rescan")
    for key, label in (("indexed", "indexed"), ("removed", "removed"),
                       ("exported", "wrote manifest for")):
        for name in reply.get(key) or []:
            print(f"{label} {name}")
    for path, why in (reply.get("skipped") or {}).items():
        print(f"skipped {path}: {why}", file=sys.stderr)
    if not any(reply.get(key) for key in ("indexed", "removed", "exported")):
        print("models are up to date")
    return 0


def cmd_verify(inv: Invocation, client: ApiClient) -> int:
    """Re-hash blobs; exit 1 when any is corrupt or missing."""
    body = {"model": inv.args[0] if inv.args else "", "repair": inv.flags["repair"]}
    problems, summary = [], {}
    with ProgressDisplay(verb="verifying") as display:
        for obj in client.stream("/api/verify", body):
            status, digest = obj.get("status", ""), obj.get("digest", "")
            if status.startswith("verifying"):
                display.update({**obj, "completed": 0})
            elif status == "success":
                summary = obj
            else:
                display.update({"status": f"verifying {digest[7:19]}", "digest": digest,
                                "total": obj.get("total", 0), "completed": obj.get("total", 0)})
                if status != "ok":
                    problems.append(obj)
    for obj in problems:
        line = f"{obj['digest']} is {obj['status']}"
        if obj.get("actual"):
            line += f" (it hashes to {obj['actual']})"
        if obj.get("models"):
            line += f"; used by {', '.join(obj['models'])}"
        if obj.get("quarantined"):
            line += "; moved to quarantine/ (pull those models again)"
        print(line)
    print(f"verified {summary.get('verified', 0)} blobs: {summary.get('corrupt', 0)} corrupt, "
          f"{summary.get('missing', 0)} missing")
    if problems and not inv.flags["repair"]:
        print("run 'corral verify --repair' to quarantine corrupt blobs", file=sys.stderr)
    return 1 if problems else 0


def cmd_save(inv: Invocation, client: ApiClient) -> int:
    output = inv.flags["output"]
    if not output:
        raise UsageError("an output file is required: -o FILE")
    if bad := [text for text in inv.args if not is_valid_name(text)]:
        raise UsageError(f"invalid model name: {bad[0]}")
    names = [parse_name(text) for text in inv.args]
    target = Path(output)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(partial, "wb") as f, ProgressDisplay(verb="saving") as display:
            writer = ArchiveWriter(f)
            try:
                for name in names:
                    _save_model(client, writer, name, display)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
    except ArchiveError as exc:
        raise UsageError(f"saving failed, no archive written: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    print(f"saved {len(names)} model{'s' if len(names) != 1 else ''} to {target} "
          f"({human_bytes(target.stat().st_size)})")
    return 0


def _save_model(client: ApiClient, writer: ArchiveWriter, name: ModelName,
                display: ProgressDisplay) -> None:
    conn, response = client.open("GET", f"/api/manifests/{quote(name.full)}")
    try:
        content, media_type = response.read(), response.headers.get("Content-Type") or SCHEMA2
    finally:
        conn.close()
    for blob in manifest_blobs(content):
        if writer.has(blob.digest):
            continue
        conn, response = client.open("GET", f"/v2/{name.namespace}/{name.model}/blobs/{blob.digest}")
        try:
            writer.add_blob(blob, response, _reporter(display))
        finally:
            conn.close()
    writer.add_model(name.full, content, media_type)


def cmd_load(inv: Invocation, client: ApiClient) -> int:
    path = inv.args[0]
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    try:
        reader = ArchiveReader(path)
    except ArchiveError as exc:
        raise UsageError(f"{path}: {exc}; nothing was imported") from None
    try:
        with ProgressDisplay(verb="loading") as display:
            models = reader.verify(_reporter(display))
            for model in models:
                if not is_valid_name(model.name):
                    raise ArchiveError(f"invalid model name {model.name!r}")
            for blob in unique_blobs(models):
                _upload(client, reader, blob, display)
            for model in models:
                conn, response = client.open(
                    "PUT", f"/api/manifests/{quote(model.name)}", raw=model.manifest,
                    headers={"Content-Type": SCHEMA2, "Content-Length": str(len(model.manifest))})
                response.read()
                conn.close()
    except ArchiveError as exc:
        raise UsageError(f"{path}: {exc}; nothing was imported") from None
    finally:
        reader.close()
    for model in models:
        print(f"loaded {parse_name(model.name).display} ({model.digest[7:19]})")
    return 0


def _upload(client: ApiClient, reader: ArchiveReader, blob: Blob,
            display: ProgressDisplay) -> None:
    label = f"importing {blob.digest[7:19]}"
    if client.head(f"/api/blobs/{blob.digest}") == 200:
        display.update({"status": label, "digest": "import " + blob.digest,
                        "total": blob.size, "completed": blob.size})
        return
    client.upload(f"/api/blobs/{blob.digest}", reader.open_blob(blob.digest), blob.size,
                  on_progress=lambda sent: display.update(
                      {"status": label, "digest": "import " + blob.digest, "total": blob.size,
                       "completed": sent}))


def _reporter(display: ProgressDisplay) -> Callable[[str, str, int, int], None]:
    def report(verb: str, digest: str, total: int, completed: int) -> None:
        display.update({"status": f"{verb} {digest[7:19]}", "digest": f"{verb} {digest}",
                        "total": total, "completed": completed})
    return report
