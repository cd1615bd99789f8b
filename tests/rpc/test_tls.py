"""TLS and mutual TLS on the gRPC listener, with certificates the test makes."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer_key, issuer: str, *, ca: bool, san: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _pem(key, cert) -> tuple[bytes, bytes]:
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, bytes | Path]:
    """A CA, a server certificate for 127.0.0.1, and a client certificate."""
    ca_key, ca_cert = _issue("test CA", None, "test CA", ca=True)
    server_key, server_cert = _issue("authsvc", ca_key, "test CA", ca=False, san=True)
    client_key, client_cert = _issue("client", ca_key, "test CA", ca=False)
    files = {}
    for name, (key, cert) in {"server": (server_key, server_cert),
                              "client": (client_key, client_cert)}.items():
        key_pem, cert_pem = _pem(key, cert)
        (tmp_path / f"{name}.key").write_bytes(key_pem)
        (tmp_path / f"{name}.crt").write_bytes(cert_pem)
        files[f"{name}_key"], files[f"{name}_cert"] = key_pem, cert_pem
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "ca.crt").write_bytes(ca_pem)
    return {**files, "ca": ca_pem, "dir": tmp_path}


async def _jwks(target: str, credentials: grpc.ChannelCredentials | None) -> int:
    channel = (grpc.aio.secure_channel(target, credentials) if credentials
               else grpc.aio.insecure_channel(target))
    async with channel:
        response = await auth_pb2_grpc.AuthStub(channel).GetJwks(
            auth_pb2.GetJwksRequest(), timeout=5)
    return len(response.keys)


async def test_tls_listener_serves_tls_and_refuses_plaintext(settings, database_url, clock, pki):
    """With a cert and key, clients that trust the CA connect; plaintext ones cannot."""
    tls = dataclasses.replace(settings, tls_cert_file=pki["dir"] / "server.crt",
                              tls_key_file=pki["dir"] / "server.key")
    async with running_app(tls, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port):
        target = f"127.0.0.1:{port}"

        keys = await _jwks(target, grpc.ssl_channel_credentials(root_certificates=pki["ca"]))
        with pytest.raises(grpc.RpcError) as plaintext:
            await _jwks(target, None)

    assert keys == 1
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate(settings, database_url, clock, pki):
    """With a client CA, a client without a certificate from it is refused."""
    mtls = dataclasses.replace(settings, tls_cert_file=pki["dir"] / "server.crt",
                               tls_key_file=pki["dir"] / "server.key",
                               tls_client_ca_file=pki["dir"] / "ca.crt")
    async with running_app(mtls, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port):
        target = f"127.0.0.1:{port}"

        with_cert = await _jwks(target, grpc.ssl_channel_credentials(
            root_certificates=pki["ca"], private_key=pki["client_key"],
            certificate_chain=pki["client_cert"]))
        with pytest.raises(grpc.RpcError) as without_cert:
            await _jwks(target, grpc.ssl_channel_credentials(root_certificates=pki["ca"]))

    assert with_cert == 1
    assert without_cert.value.code() == grpc.StatusCode.UNAVAILABLE
