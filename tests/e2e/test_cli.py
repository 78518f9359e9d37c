"""Issue 2 end to end: the corral CLI against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.server import ROOT, free_port

pytestmark = pytest.mark.e2e


def corral_cli(*args: str, host: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}, "OLLAMA_HOST": host}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_run_one_shot_streams_answer(corral):
    result = corral_cli("run", "smollm2:135m", "Say hi in three words.", host=corral.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_run_with_piped_stdin_and_verbose(corral):
    result = corral_cli("run", "smollm2:135m", "--verbose", host=corral.url,
                        stdin="Summarise: the cat sat on the mat.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "eval rate:" in result.stderr


def test_list_and_ps_columns(corral):
    corral_cli("run", "smollm2:135m", "hi", host=corral.url)
    listing = corral_cli("list", host=corral.url).stdout.splitlines()
    assert listing[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert listing[1].startswith("smollm2:135m") and " MB " in listing[1]
    ps = corral_cli("ps", host=corral.url).stdout.splitlines()
    assert ps[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert ps[1].startswith("smollm2:135m")


def test_missing_model_is_a_one_line_error(corral):
    result = corral_cli("run", "nope:1b", "hi", host=corral.url)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: model 'nope:1b' not found"


def test_unreachable_server_is_a_one_line_error():
    result = corral_cli("list", host=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: could not connect") and "Traceback" not in result.stderr
