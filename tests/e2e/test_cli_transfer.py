"""``corral push`` and ``corral pull`` between two real servers (the second one is the registry)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.server import CorralServer
from tests.e2e.cli_helpers import corral_cli, one_error_line, tiny_gguf

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A second Corral that accepts pushes on /v2/."""
    base = tmp_path_factory.mktemp("registry")
    server = CorralServer(base / "models", base / "serve.log", CORRAL_REGISTRY_WRITE="1").start()
    yield server
    server.stop()


def test_push_then_pull_back_with_progress(corral, registry, tmp_path):
    remote = f"127.0.0.1:{registry.port}/library/tiny-push:v1"
    tiny_gguf(tmp_path / "tiny.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./tiny.gguf\n")
    assert corral_cli("create", remote, "-f", str(tmp_path / "Modelfile"), host=corral.url).returncode == 0
    try:
        pushed = corral_cli("push", remote, "--insecure", host=corral.url)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout == f"\nYou can find your model at:\n\n\t{remote}\n"
        assert re.search(r"^pushing [0-9a-f]{12}.* 100% ", pushed.stderr, re.M)
        assert pushed.stderr.splitlines()[-1] == "success"

        assert corral_cli("rm", remote, host=corral.url).returncode == 0
        pulled = corral_cli("pull", remote, "--insecure", host=corral.url)
        assert pulled.returncode == 0, pulled.stderr
        lines = pulled.stderr.splitlines()
        assert lines[0] == "pulling manifest" and lines[-1] == "success"
        assert [line for line in lines if re.fullmatch(r"pulling [0-9a-f]{12}: 100% \d+ B", line)]
        assert remote in corral_cli("list", host=corral.url).stdout
    finally:
        corral_cli("rm", remote, host=corral.url)


def test_pull_of_an_unknown_model_is_a_one_line_error(corral, registry):
    result = corral_cli("pull", f"127.0.0.1:{registry.port}/library/absent:v1", "--insecure",
                        host=corral.url)
    assert "not exist" in one_error_line(result) or "not found" in one_error_line(result)


def test_run_pulls_a_missing_model_first(corral, registry, tmp_path):
    remote = f"127.0.0.1:{registry.port}/library/smol-run:v1"
    (tmp_path / "Modelfile").write_text("FROM smollm2:135m\nPARAMETER num_predict 4\n")
    assert corral_cli("create", remote, "-f", str(tmp_path / "Modelfile"), host=corral.url).returncode == 0
    try:
        assert corral_cli("push", remote, "--insecure", host=corral.url).returncode == 0
        assert corral_cli("rm", remote, host=corral.url).returncode == 0
        result = corral_cli("run", remote, "Hello", "--insecure", host=corral.url)
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines()[0] == "pulling manifest" and "success" in result.stderr
        assert result.stdout.strip()
        assert remote in corral_cli("list", host=corral.url).stdout
    finally:
        corral_cli("rm", remote, host=corral.url)
