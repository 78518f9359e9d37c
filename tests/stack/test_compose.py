"""compose.yaml (and the GPU override), checked without a Docker engine.

``docker-compose config`` (Debian's docker-compose 1.29) validates the files against the Compose
schema and resolves them; the structural tests below hold the stack to what the README promises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
GPU = ROOT / "compose.gpu.yaml"
FLEET = {"postgres", "fleet-registry", "gateway-a", "gateway-b", "lb"}  # the `fleet` profile


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if not found:
        if os.environ.get("CORRAL_STACK_STRICT"):
            pytest.fail("docker-compose is missing (apt-get install docker-compose)")
        pytest.skip("docker-compose not installed (Debian package docker-compose)")
    return found


def resolved(*files: Path, profile: str | None = None) -> dict:
    """``docker-compose config`` output for ``files``, parsed; fails on any schema error."""
    argv = [docker_compose(), "--project-directory", str(ROOT)]
    for path in files:
        argv += ["-f", str(path)]
    if profile:
        argv += ["--profile", profile]
    result = subprocess.run([*argv, "config"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "COMPOSE_PROJECT_NAME": "corral"})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_docker_compose_config_accepts_the_stack():
    config = resolved(COMPOSE, profile="webui")
    # docker-compose 1.29's `config` lists the services of every profile (see FLEET below).
    assert set(config["services"]) == {"registry", "gateway", "open-webui", "prometheus",
                                       "grafana"} | FLEET
    assert {"models", "open-webui", "prometheus", "grafana"} <= set(config["volumes"])


def test_docker_compose_config_accepts_the_gpu_override():
    config = resolved(COMPOSE, GPU)
    for name in ("registry", "gateway"):
        build = config["services"][name]["build"]
        assert build["args"]["CMAKE_ARGS"] == "-DGGML_CUDA=on"
        assert build["args"]["BUILD_IMAGE"].startswith("nvidia/cuda:")
        assert "-devel-" in build["args"]["BUILD_IMAGE"]
        assert "-runtime-" in build["args"]["RUNTIME_IMAGE"]
    (device,) = config["services"]["gateway"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_gpu_build_args_are_declared_by_the_dockerfile():
    declared = {line.split()[1].split("=")[0] for line in (ROOT / "Dockerfile").read_text().splitlines()
                if line.startswith("ARG ")}
    args = yaml.safe_load(GPU.read_text())["x-cuda-build"]["args"]
    assert set(args) <= declared


def test_registry_and_gateway_share_one_image_and_the_models_volume(compose):
    registry, gateway = compose["services"]["registry"], compose["services"]["gateway"]
    assert registry["image"] == gateway["image"]
    assert not registry["image"].endswith(":latest")
    assert registry["build"]["context"] == "."
    for service in (registry, gateway):
        assert "models:/models" in service["volumes"]
        assert service["environment"]["OLLAMA_MODELS"] == "/models"
        assert service["restart"] == "unless-stopped"


def test_each_service_runs_a_real_module(compose):
    for name in ("registry", "gateway"):
        command = compose["services"][name]["command"]
        assert command[:2] == ["python", "-m"]
        assert (ROOT / command[2] / "__main__.py").is_file()


def test_only_the_gateway_port_is_published(compose):
    services = compose["services"]
    assert "ports" not in services["registry"]
    assert services["gateway"]["ports"] == ["11434:11434"]
    assert services["gateway"]["environment"]["OLLAMA_HOST"] == "0.0.0.0:11434"
    registry_addr = services["registry"]["environment"]["CORRAL_REGISTRY_ADDR"]
    assert registry_addr == "0.0.0.0:11435"
    assert services["gateway"]["environment"]["CORRAL_REGISTRY_ADDR"] == "registry:11435"


def test_healthchecks_probe_the_grpc_and_http_health_endpoints(compose):
    services = compose["services"]
    registry_check = services["registry"]["healthcheck"]["test"]
    gateway_check = services["gateway"]["healthcheck"]["test"]
    assert registry_check == ["CMD", "python", "-m", "services.healthcheck", "grpc", "127.0.0.1:11435"]
    assert gateway_check == ["CMD", "python", "-m", "services.healthcheck", "http",
                             "http://127.0.0.1:11434/readyz"]
    assert services["gateway"]["depends_on"]["registry"]["condition"] == "service_healthy"


def test_open_webui_is_an_optional_profile_pointed_at_the_gateway(compose):
    webui = compose["services"]["open-webui"]
    assert webui["profiles"] == ["webui"]
    assert not webui["image"].endswith((":latest", ":main"))
    env = webui["environment"]
    assert env["OLLAMA_BASE_URL"] == "http://gateway:11434"
    assert env["RAG_EMBEDDING_ENGINE"] == "ollama"
    assert env["RAG_EMBEDDING_MODEL"] == "smollm2:135m"
    assert json.loads(env["DEFAULT_MODEL_METADATA"]) == {"capabilities": {"builtin_tools": False}}
    assert webui["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert webui["restart"] == "unless-stopped"


def test_the_webui_test_runs_the_open_webui_release_compose_pins():
    """The browser test and the compose file use the same Open WebUI release."""
    image_tag = yaml.safe_load(COMPOSE.read_text())["services"]["open-webui"]["image"].rsplit(":v", 1)[1]
    script = (ROOT / "scripts" / "test-webui.sh").read_text()
    assert f"OPEN_WEBUI_VERSION={image_tag}" in script



def test_monitoring_profile_runs_prometheus_on_the_shipped_scrape_config(compose):
    services = compose["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    for service in (prometheus, grafana):
        assert service["profiles"] == ["monitoring"]
        assert not service["image"].endswith(":latest") and ":" in service["image"]
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert prometheus["depends_on"]["gateway"]["condition"] == "service_healthy"
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["gateway:11434"]


# -- the fleet profile ----------------------------------------------------------------------------


def test_docker_compose_config_accepts_the_fleet_profile():
    config = resolved(COMPOSE, profile="fleet")
    assert FLEET <= set(config["services"])
    assert {"fleet-models", "fleet-postgres", "gateway-a-cache", "gateway-b-cache"} <= set(config["volumes"])
    services = config["services"]
    for name in FLEET:
        assert services[name].get("profiles") == ["fleet"], name
    # Only the load balancer is published; the database and the registry stay inside.
    assert [name for name in FLEET if services[name].get("ports")] == ["lb"]
    (port,) = services["lb"]["ports"]
    assert (int(port["published"]), int(port["target"])) == (11500, 11434)


def test_fleet_gateways_share_no_disk_with_the_registry(compose):
    services = compose["services"]
    registry = services["fleet-registry"]
    assert registry["environment"]["CORRAL_DATABASE_URL"].startswith("postgresql+asyncpg://corral:")
    assert "@postgres:5432/corral" in registry["environment"]["CORRAL_DATABASE_URL"]
    assert registry["depends_on"]["postgres"]["condition"] == "service_healthy"
    caches = set()
    for name in ("gateway-a", "gateway-b"):
        gateway = services[name]
        (volume,) = gateway["volumes"]
        assert volume.endswith(":/cache") and "models" not in volume
        caches.add(volume)
        env = gateway["environment"]
        assert env["CORRAL_CACHE_DIR"] == "/cache" and env["CORRAL_CACHE_MAX"]
        assert env["CORRAL_REGISTRY_ADDR"] == "fleet-registry:11435"
        assert "OLLAMA_MODELS" not in env
        assert gateway["depends_on"]["fleet-registry"]["condition"] == "service_healthy"
    assert len(caches) == 2  # each gateway its own cache


def test_the_fleet_load_balancer_config_names_both_gateways(compose):
    lb = compose["services"]["lb"]
    (mount,) = lb["volumes"]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/etc/nginx/nginx.conf", "ro")
    config = (ROOT / source).read_text()
    for name in ("gateway-a", "gateway-b"):
        assert f"server {name}:11434" in config
    assert "proxy_buffering off;" in config and "proxy_next_upstream error timeout;" in config
    assert "listen 11434;" in config
    assert not lb["image"].endswith(":latest")


def test_the_fleet_nginx_config_is_valid_for_nginx(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx not installed")
    # nginx -t resolves upstream names: point them at loopback for the syntax check.
    config = (ROOT / "deploy/nginx/fleet.conf").read_text().replace("gateway-a", "127.0.0.1")
    config = config.replace("gateway-b", "127.0.0.2")
    (tmp_path / "nginx.conf").write_text(config)
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-e", str(tmp_path / "error.log"), "-g", f"pid {tmp_path}/nginx.pid;"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
