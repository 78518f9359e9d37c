"""Real peers the end-to-end tests start themselves: Debian's docker-registry and tinyproxy."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.server import free_port


def registry_config(root: Path, port: int, host: str = "127.0.0.1",
                    tls: tuple[Path, Path] | None = None) -> Path:
    """A config with no ``auth:`` section (Debian's default one turns Basic auth on)."""
    config = root / "config.yml"
    tls_section = (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {host}:{port}\n  secret: {secrets.token_hex(16)}\n{tls_section}")
    return config


def self_signed_certificate(root: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``ip`` that is its own CA (point ``SSL_CERT_FILE`` at it to trust it)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = root / "registry.crt", root / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def docker_registry(root: Path, host: str = "127.0.0.1",
                    tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """``docker-registry serve`` on ``host`` (HTTPS with ``tls``); yields ``host:port``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("Debian's docker-registry is not installed (scripts/test.sh installs it)")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(root / "docker-registry.log", "wb")
    process = subprocess.Popen([binary, "serve", str(registry_config(root, port, host, tls))],
                               stdout=log, stderr=subprocess.STDOUT)
    address = f"{host}:{port}"
    try:
        if tls:
            _wait_for_port(host, port, process, root / "docker-registry.log")
        else:
            _wait_until_up(f"http://{address}/v2/", process, root / "docker-registry.log")
        yield address
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@contextmanager
def tinyproxy(root: Path) -> Iterator[tuple[str, Path]]:
    """Debian's tinyproxy on loopback, logging every request; yields (proxy URL, log path)."""
    binary = shutil.which("tinyproxy")
    if binary is None:
        pytest.skip("Debian's tinyproxy is not installed (scripts/test.sh installs it)")
    root.mkdir(parents=True, exist_ok=True)
    port, log_path = free_port(), root / "tinyproxy.log"
    config = root / "tinyproxy.conf"
    config.write_text(f'Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile "{log_path}"\n'
                      "LogLevel Info\nMaxClients 50\nAllow 127.0.0.1\n")
    output = open(root / "tinyproxy.out", "wb")
    process = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=output,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((root / "tinyproxy.out").read_text()) from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        process.terminate()
        process.wait(10)
        output.close()


def non_loopback_address() -> str:
    """An address of this machine that is not loopback (Go, and so Ollama and Corral, never
    proxy loopback); ``0.0.0.0`` when there is none, which is not loopback either."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = probe.getsockname()[0]
        except OSError:
            return "0.0.0.0"
    return "0.0.0.0" if address.startswith("127.") else address


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.1)


def _wait_for_port(host: str, port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.1)
