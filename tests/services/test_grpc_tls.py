"""Registry ↔ gateway gRPC over mutual TLS (``CORRAL_GRPC_TLS_CERT`` / ``_KEY`` / ``_CA``).

A CA made here signs the registry's certificate and a gateway's client certificate; the real
registry server and ``RegistryClient`` then talk over TLS, and clients without a certificate
from that CA, or without TLS, are turned away.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from registry.server import running_registry
from services.clients.registry import RegistryClient
from services.errors import CorralError
from services.settings import GatewaySettings, GrpcTls, RegistrySettings


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, key, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def make_ca(directory: Path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, _ = _write(directory, name, key, cert)
    return key, cert, cert_path


def issue(directory: Path, stem: str, ca_key, ca_cert, *, server: bool) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(stem)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1)))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return _write(directory, stem, key, builder.sign(ca_key, hashes.SHA256()))


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_key, ca_cert, ca_path = make_ca(tmp_path, "corral-ca")
    rogue_key, rogue_cert, _ = make_ca(tmp_path, "rogue-ca")
    server_cert, server_key = issue(tmp_path, "registry", ca_key, ca_cert, server=True)
    client_cert, client_key = issue(tmp_path, "gateway", ca_key, ca_cert, server=False)
    rogue_client, rogue_client_key = issue(tmp_path, "intruder", rogue_key, rogue_cert,
                                           server=False)
    return {"ca": ca_path, "server_cert": server_cert, "server_key": server_key,
            "client_cert": client_cert, "client_key": client_key,
            "rogue_cert": rogue_client, "rogue_key": rogue_client_key}


async def test_registry_and_gateway_talk_over_mutual_tls(tmp_path: Path, pki) -> None:
    settings = RegistrySettings(
        models_dir=tmp_path / "models", address="127.0.0.1:0", embedded_model=False,
        grpc_tls=GrpcTls(cert=pki["server_cert"], key=pki["server_key"], ca=pki["ca"]))
    async with running_registry(settings) as service:
        assert service.tls
        target = f"127.0.0.1:{service.port}"
        gateway_env = {"CORRAL_GRPC_TLS_CA": str(pki["ca"]),
                       "CORRAL_GRPC_TLS_CERT": str(pki["client_cert"]),
                       "CORRAL_GRPC_TLS_KEY": str(pki["client_key"])}
        tls = GatewaySettings.from_env(gateway_env).grpc_tls
        good = RegistryClient(target, tls)
        try:
            await good.wait_ready(timeout=10)
            assert await good.list_models() == []
        finally:
            await good.close()

        refused = [
            RegistryClient(target),  # plaintext
            RegistryClient(target, GrpcTls(ca=pki["ca"])),  # TLS, but no client certificate
            RegistryClient(target, GrpcTls(ca=pki["ca"], cert=pki["rogue_cert"],
                                           key=pki["rogue_key"])),  # signed by another CA
        ]
        for client in refused:
            try:
                with pytest.raises(CorralError):
                    await client.list_models()
            finally:
                await client.close()


async def test_unix_sockets_stay_plaintext_and_half_a_key_pair_is_an_error(
        tmp_path: Path, pki) -> None:
    from services.grpc_server import GrpcService, server_credentials

    service = GrpcService(f"unix:{tmp_path}/r.sock", [], GrpcTls(cert=pki["server_cert"],
                                                                   key=pki["server_key"]))
    assert not service.tls
    with pytest.raises(ValueError, match="set together"):
        server_credentials(GrpcTls(cert=pki["server_cert"]))
