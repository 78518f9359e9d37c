"""A client command with no server at OLLAMA_HOST starts one in the background (beyond Ollama)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.server import alive, descendants, free_port
from tests.e2e.cli_helpers import corral_cli

pytestmark = pytest.mark.e2e


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def servers_for(host: str) -> list[int]:
    """``corral serve`` processes started for ``host`` (their environment says so)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"services.cli\0serve" in (entry / "cmdline").read_bytes():
                if f"OLLAMA_HOST={host}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop_group(pid: int, timeout: float = 30.0) -> list[int]:
    """SIGTERM the auto-started server's process group, SIGKILL what outlives the grace;
    return every process that was in the tree."""
    tree = sorted({pid, *descendants(pid), *group_members(pid)})
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return tree
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.2)
    for p in tree:
        if alive(p):
            os.kill(p, signal.SIGKILL)
    return tree


def test_list_starts_a_local_server_in_the_background(tmp_path: Path):
    host = f"127.0.0.1:{free_port()}"
    models = tmp_path / "models"
    pid, tree = None, []
    try:
        result = corral_cli("list", host=host, OLLAMA_MODELS=str(models), CORRAL_NO_AUTOSTART="",
                            CORRAL_NUM_THREADS="2", HOME=str(tmp_path))
        note = re.search(r"Started corral server in the background \(pid (\d+), log: (.+)\)",
                         result.stderr)
        assert note, result.stderr
        pid = int(note.group(1))
        assert result.returncode == 0, result.stderr
        assert Path(note.group(2)) == models / "logs" / "server.log"
        assert Path(note.group(2)).stat().st_size > 0
        assert result.stdout.splitlines()[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
        assert result.stdout.splitlines()[1].startswith("smollm2:135m ")  # the new store, registered
        assert os.getpgid(pid) == pid  # detached: its own process group, ready for killpg
        assert len(group_members(pid)) >= 3  # serve, registry, gateway
        assert servers_for(host) == [pid]

        again = corral_cli("ps", host=host, OLLAMA_MODELS=str(models), CORRAL_NO_AUTOSTART="")
        assert again.returncode == 0 and "Started" not in again.stderr  # already answering
    finally:
        for leader in {pid, *servers_for(host)} - {None}:  # also when the note never came
            tree += stop_group(leader)
    assert tree and not [p for p in tree if alive(p)] and not group_members(pid)
    assert not servers_for(host)
