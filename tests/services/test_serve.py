"""The launcher's child environment: where the registry listens."""

from pathlib import Path

from services.serve import PROJECT_ROOT, child_environment


def test_registry_gets_a_private_unix_socket_by_default(tmp_path: Path) -> None:
    # A TCP port chosen here could be taken before the registry binds it (CI saw the gateway's
    # own port handed out twice), so the default is a socket in the launcher's runtime dir.
    env = child_environment({"PATH": "/bin"}, tmp_path)
    assert env["CORRAL_REGISTRY_ADDR"] == f"unix:{tmp_path / 'registry.sock'}"
    assert env["PYTHONPATH"].split(":")[0] == str(PROJECT_ROOT)


def test_an_explicit_registry_address_is_kept(tmp_path: Path) -> None:
    env = child_environment({"CORRAL_REGISTRY_ADDR": "registry:11435", "PYTHONPATH": "/x"}, tmp_path)
    assert env["CORRAL_REGISTRY_ADDR"] == "registry:11435"
    assert env["PYTHONPATH"] == f"{PROJECT_ROOT}:/x"
