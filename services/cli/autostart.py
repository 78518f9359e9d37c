"""Start a local ``corral serve`` in the background when no server answers (beyond Ollama's CLI).

Only for a loopback or unspecified OLLAMA_HOST, and not when CORRAL_NO_AUTOSTART is true. The
server runs detached in its own session (its own process group, so one ``killpg`` stops the
whole tree) with output appended to ``$OLLAMA_MODELS/logs/server.log``. A lock file keeps two
CLI processes from starting two servers on one port.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from services.api_client import ApiClient, ApiError, ServerUnreachableError
from services.settings import ClientSettings, HostAddress

PROJECT_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0


def client_of(settings: ClientSettings, timeout: float | None = None) -> ApiClient:
    """A client of the configured host carrying the API key."""
    return ApiClient(settings.host, timeout, api_key=settings.api_key)


def is_local(host: HostAddress) -> bool:
    """Loopback, unspecified or ``localhost``: a server we may start ourselves."""
    if host.host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def connect(settings: ClientSettings, env: Mapping[str, str]) -> ApiClient:
    """A client of a server that answers (Ollama's heartbeat), starting one if allowed.

    A server started here gets ``env``, the CLI's whole environment, as its own. Raises
    ServerUnreachableError when none answers and none may or could be started.
    """
    client = client_of(settings)
    if client.is_running():
        return client
    if settings.no_autostart or not is_local(settings.host):
        raise ServerUnreachableError("could not connect to corral server, run 'corral serve' to start it")
    log_dir = settings.models_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "autostart.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if client.is_running():  # another CLI process started it while we waited
            return client
        pid, log_path = spawn_server(env, log_dir / "server.log")
        wait_until_ready(client_of(settings, timeout=5.0), pid, log_path)
    print(f"Started corral server in the background (pid {pid}, log: {log_path})", file=sys.stderr)
    return client


def spawn_server(env: Mapping[str, str], log_path: Path) -> tuple[int, Path]:
    """``corral serve`` detached: own session, no terminal, output appended to ``log_path``."""
    child_env = dict(env)
    paths = [str(PROJECT_ROOT), *filter(None, child_env.get("PYTHONPATH", "").split(os.pathsep))]
    child_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve"], env=child_env, cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process.pid, log_path


def wait_until_ready(probe: ApiClient, pid: int, log_path: Path,
                     timeout: float = READY_TIMEOUT_S) -> None:
    """Poll until the model list answers (gateway and registry both up); raise if the server
    exits or never answers. ``probe`` should have a short timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            probe.request("GET", "/api/tags")
            return
        except (ServerUnreachableError, ApiError, OSError):
            pass
        if _exited(pid):
            raise ServerUnreachableError(f"could not start corral server, see {log_path}")
        time.sleep(0.2)
    raise ServerUnreachableError(f"corral server did not answer within {timeout:.0f}s, see {log_path}")


def _exited(pid: int) -> bool:
    try:
        finished, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return finished == pid
