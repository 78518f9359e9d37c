"""The model-management commands: list, ps, show, stop, pull, push, cp, rm, and ``--version``."""

from __future__ import annotations

import sys
from http import HTTPStatus
from importlib import metadata
from typing import Any

from services.api_client import ApiClient, ApiError, ServerUnreachableError
from services.cli.parser import Invocation, UsageError
from services.cli.progress import ProgressDisplay
from services.cli.run import RunOptions, load_or_unload, pull_model
from services.cli.show import show_info
from services.cli_format import human_bytes, human_time, human_until, table
from services.names import is_valid_name, parse_name

SHOW_FLAGS = ("license", "modelfile", "parameters", "system", "template")


def client_version() -> str:
    try:
        return metadata.version("corral")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def print_list(client: ApiClient, args: list[str]) -> None:
    """``list [PREFIX]``: NAME ID SIZE MODIFIED, prefix matched case-insensitively."""
    rows = []
    for m in client.request("GET", "/api/tags")["models"]:
        if not args or m["name"].lower().startswith(args[0].lower()):
            size = "-" if m.get("remote_model") else human_bytes(m.get("size", 0))
            rows.append([m["name"], m["digest"][:12], size, human_time(m.get("modified_at"))])
    sys.stdout.write(table(["NAME", "ID", "SIZE", "MODIFIED"], rows))


def cmd_list(inv: Invocation, client: ApiClient) -> int:
    print_list(client, inv.args)
    return 0


def _processor(size: int, vram: int) -> str:
    if vram == 0:
        return "100% CPU"
    if vram == size:
        return "100% GPU"
    if vram > size or size == 0:
        return "Unknown"
    cpu = round((size - vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def cmd_ps(inv: Invocation, client: ApiClient) -> int:
    """``ps [PREFIX]``: NAME ID SIZE PROCESSOR CONTEXT UNTIL."""
    rows = []
    for m in client.request("GET", "/api/ps")["models"]:
        if not inv.args or m["name"].startswith(inv.args[0]):
            rows.append([m["name"], m["digest"][:12], human_bytes(m.get("size", 0)),
                         _processor(m.get("size", 0), m.get("size_vram", 0)),
                         str(m.get("context_length", 0)), human_until(m.get("expires_at", ""))])
    sys.stdout.write(table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows))
    return 0


def cmd_show(inv: Invocation, client: ApiClient) -> int:
    chosen = [name for name in SHOW_FLAGS if inv.flags[name]]
    if len(chosen) > 1:
        raise UsageError("only one of '--license', '--modelfile', '--parameters', '--system', "
                         "or '--template' can be specified")
    body: dict[str, Any] = {"model": inv.args[0]}
    if inv.flags["verbose"]:
        body["verbose"] = True
    resp = client.request("POST", "/api/show", body)
    if "image" in (resp.get("capabilities") or []):
        raise UsageError("image generation models are not currently supported")
    if not chosen:
        sys.stdout.write(show_info(resp, inv.flags["verbose"]))
    elif chosen[0] in ("system", "template"):
        sys.stdout.write(resp.get(chosen[0], ""))
    else:
        print(resp.get(chosen[0], ""))
    return 0


def cmd_stop(inv: Invocation, client: ApiClient) -> int:
    try:
        load_or_unload(client, RunOptions(model=inv.args[0], keep_alive=0))
    except ApiError as exc:
        if exc.not_found:
            raise UsageError(f'couldn\'t find model "{inv.args[0]}" to stop') from None
        raise
    return 0


def cmd_pull(inv: Invocation, client: ApiClient) -> int:
    pull_model(client, inv.args[0], inv.flags["insecure"])
    return 0


def cmd_push(inv: Invocation, client: ApiClient) -> int:
    """Push with progress, then say where the model went."""
    name = parse_name(inv.args[0]) if is_valid_name(inv.args[0]) else None
    try:
        with ProgressDisplay(verb="pushing") as display:
            for obj in client.stream("/api/push", {"model": inv.args[0],
                                                   "insecure": inv.flags["insecure"]}):
                display.update(obj)
    except ApiError as exc:
        if _refused_upstream(exc):
            raise UsageError("you are not authorized to push to this namespace, "
                             "create the model under a namespace you own") from None
        raise
    destination = name.full if name else inv.args[0]
    if name and name.host.lower().endswith((".ollama.ai", ".ollama.com")):
        destination = "https://ollama.com/" + name.display.removesuffix(":latest")
    print("\nYou can find your model at:\n")
    print(f"\t{destination}")
    return 0


def _refused_upstream(exc: ApiError) -> bool:
    """The remote registry refused our credentials for the push. With a status, only a 502
    (``UpstreamError``) can be that: a 401/403 is this server refusing the caller's own key.
    After the 200, Ollama's stream contract carries nothing but the registry's words, so they
    decide there, as in Ollama's CLI."""
    if exc.status and exc.status != HTTPStatus.BAD_GATEWAY:
        return False
    text = exc.message.lower()
    return "unauthorized" in text or "access denied" in text


def cmd_copy(inv: Invocation, client: ApiClient) -> int:
    source, destination = inv.args
    client.request("POST", "/api/copy", {"source": source, "destination": destination})
    print(f"copied '{source}' to '{destination}'")
    return 0


def cmd_delete(inv: Invocation, client: ApiClient) -> int:
    """Unload each model first (as Ollama's ``rm`` does), then delete it."""
    for name in inv.args:
        try:
            load_or_unload(client, RunOptions(model=name, keep_alive=0))
        except ApiError as exc:
            if not exc.not_found:
                print(f"Warning: unable to stop model '{name}'", file=sys.stderr)
        client.request("DELETE", "/api/delete", {"model": name})
        print(f"deleted '{name}'")
    return 0


def print_version(client: ApiClient) -> int:
    """``corral --version``: the server's version, and the client's when they differ."""
    server = ""
    try:
        server = (client.request("GET", "/api/version") or {}).get("version", "")
    except (ApiError, ServerUnreachableError):
        print("Warning: could not connect to a running corral instance")
    if server:
        print(f"corral version is {server}")
    if server != client_version():
        print(f"Warning: client version is {client_version()}")
    return 0

