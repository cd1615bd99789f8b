"""HTTPS at the gateway itself, over real TLS: the gateway binary started with
``--tls-cert``/``--tls-key`` in front of real authsvc.

The certificates are made here with ``cryptography``: a test CA and leaf
certificates for ``auth.example.test`` (a name that is not localhost, so
nothing about cookies or HTTPS is relaxed for it), which the client reaches
at 127.0.0.1 with that name as SNI, as the name the certificate is checked
against, and as Host.

- HTTPS answers, offers HTTP/2 by ALPN and speaks it.
- Strict-Transport-Security is on every HTTPS answer and on no plain-HTTP one.
- Replacing the certificate files is seen by the next connection (a new
  serial), with no restart; a broken pair keeps the old certificate.
- Cookie mode works over HTTPS at that host: the ``__Host-`` cookie is set
  Secure, spent by refresh, and cleared by sign-out.
"""

from __future__ import annotations

import datetime
import http.client
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..helpers import PASSWORD, eventually_blocking
from .test_gateway import (  # noqa: F401 (fixtures are used by name)
    Process,
    Reply,
    Stack,
    call,
    gateway_binary,
    send,
    stack_factory,
)

pytestmark = pytest.mark.go
HOST = "auth.example.test"
ORIGIN = "https://app.example.test"
HSTS = "max-age=63072000"
COOKIE = "__Host-authsvc_refresh"
PATIENCE = 30.0  # seconds to wait for what must happen soon, on a loaded machine


# --- certificates ----------------------------------------------------------------


@dataclass
class Authority:
    """A test CA that issues leaf certificates for HOST."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authsvc test CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, serial: int) -> tuple[bytes, bytes]:
        """A leaf certificate for HOST with ``serial``, and its key, both PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(serial)
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def replace(path: Path, content: bytes) -> None:
    """Puts ``content`` in ``path`` at once (write beside, then rename over)."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(content)
    os.replace(part, path)


# --- the gateway over TLS ------------------------------------------------------------


@dataclass
class TLSGateway:
    process: Process
    port: int
    authority: Authority
    cert_file: Path
    key_file: Path
    plain: str  # host:port of a plain-HTTP gateway in front of the same authsvc
    stack: Stack

    def context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client context that trusts only the test CA and checks the name."""
        ctx = ssl.create_default_context(cadata=self.authority.pem())
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def connect(self, alpn: list[str] | None = None) -> ssl.SSLSocket:
        """A new TLS connection to the gateway as HOST."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        return self.context(alpn).wrap_socket(sock, server_hostname=HOST)

    def serial(self) -> int:
        """The serial of the certificate a new connection is shown."""
        with self.connect() as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number

    def request(self, method: str, path: str, body: Any = None,
                headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = ()) -> Reply:
        """One HTTPS request to HOST (SNI, certificate name and Host header)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=15)
        conn.sock = self.connect(["http/1.1"])
        return send(conn, method, path, body, headers)


@pytest.fixture(scope="module")
def tls_gateway(stack_factory: Any, gateway_binary: Path,  # noqa: F811 (fixtures)
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSGateway]:
    """authsvc, a gateway serving HTTPS for HOST in cookie mode for ORIGIN, and the
    stack's own plain-HTTP gateway beside it."""
    stack = stack_factory()
    authority = Authority.create()
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert, key = authority.issue(1)
    replace(cert_file, cert)
    replace(key_file, key)
    upstream = stack.authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
    process = Process([str(gateway_binary), "--listen", "127.0.0.1:0", "--upstream", upstream,
                       "--cors-origins", ORIGIN, "--refresh-cookie"],
                      env={"AUTHSVC_GATEWAY_TLS_CERT": str(cert_file),
                           "AUTHSVC_GATEWAY_TLS_KEY": str(key_file)})
    try:
        port = int(process.wait_for(r"listening on https://127\.0\.0\.1:(\d+)").group(1))
        yield TLSGateway(process, port, authority, cert_file, key_file, stack.address, stack)
    finally:
        process.stop()


def cookie_of(reply: Reply) -> Any:
    """The refresh cookie an answer sets (a Morsel), or None."""
    for header in reply.headers.get_all("Set-Cookie") or []:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if COOKIE in jar:
            return jar[COOKIE]
    return None


def refused(process: Process) -> bool:
    """Whether the gateway has logged a certificate pair it would not load."""
    return any("TLS certificate not reloaded" in line for line in process.lines)


def until(probe: Any, done: Any, what: str) -> Any:
    """Calls ``probe`` (each call a new connection, on which the gateway looks at its
    files) until ``done`` holds for the result; returns that result."""
    last: list[Any] = []

    def holds() -> bool:
        last[:] = [probe()]
        return bool(done(last[0]))

    eventually_blocking(holds, PATIENCE, lambda: f"{what} (still {last[0]!r})", interval=0.05)
    return last[0]


# --- tests ---------------------------------------------------------------------------


def test_https_answers_with_http2_offered_and_spoken(tls_gateway: TLSGateway) -> None:
    """The gateway answers HTTPS for a name its certificate holds, chooses h2 when the
    client offers it, and answers an HTTP/2 connection preface with its SETTINGS."""
    health = tls_gateway.request("GET", "/healthz")
    with tls_gateway.connect(["h2", "http/1.1"]) as tls:
        chosen = tls.selected_alpn_protocol()
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        frame = b""
        while len(frame) < 9:
            chunk = tls.recv(9 - len(frame))
            assert chunk, "the connection closed before a frame"
            frame += chunk

    assert health.status == 200
    assert chosen == "h2"
    assert frame[3] == 4 and frame[4] & 1 == 0, frame  # a SETTINGS frame, not an ACK


def test_hsts_is_on_https_answers_and_never_on_plain_http(tls_gateway: TLSGateway) -> None:
    """Successes, refusals and probes over HTTPS carry Strict-Transport-Security
    (max-age two years, no includeSubDomains unless asked); plain HTTP never does."""
    secure = {"healthz": tls_gateway.request("GET", "/healthz"),
              "jwks": tls_gateway.request("GET", "/.well-known/jwks.json"),
              "401": tls_gateway.request("POST", "/v1/auth/validate", {}),
              "404": tls_gateway.request("GET", "/v1/nope")}
    plain = {"healthz": call(tls_gateway.plain, "GET", "/healthz"),
             "jwks": call(tls_gateway.plain, "GET", "/.well-known/jwks.json"),
             "401": call(tls_gateway.plain, "POST", "/v1/auth/validate", {})}

    assert {name: r.status for name, r in secure.items()} == {
        "healthz": 200, "jwks": 200, "401": 401, "404": 404}
    assert {name: r.header("Strict-Transport-Security") for name, r in secure.items()} == {
        name: HSTS for name in secure}
    assert {name: r.status for name, r in plain.items()} == {
        "healthz": 200, "jwks": 200, "401": 401}
    assert {name: r.headers.get_all("Strict-Transport-Security") for name, r in plain.items()} == {
        name: None for name in plain}


def test_replaced_certificate_files_are_served_to_new_connections(
        tls_gateway: TLSGateway) -> None:
    """Without a restart: a broken pair keeps the old certificate (and is logged);
    a whole new pair is shown to the next connection, with its new serial."""
    before = tls_gateway.serial()
    cert, key = tls_gateway.authority.issue(before + 1)
    _, other_key = tls_gateway.authority.issue(before + 2)

    replace(tls_gateway.cert_file, cert)
    replace(tls_gateway.key_file, other_key)  # a key that does not match
    during = until(tls_gateway.serial, lambda _: refused(tls_gateway.process),
                   "the gateway to log the pair it would not load")
    replace(tls_gateway.key_file, key)
    after = until(tls_gateway.serial, lambda serial: serial != before,
                  "the new certificate to be served")
    health = tls_gateway.request("GET", "/healthz")

    assert during == before
    assert after == before + 1
    assert health.status == 200
    assert tls_gateway.process.proc.poll() is None
    tls_gateway.process.wait_for(rf"TLS certificate reloaded.*serial={before + 1}\b", timeout=1)


def test_cookie_mode_works_over_https_on_a_real_host_name(tls_gateway: TLSGateway) -> None:
    """At HOST over HTTPS, a browser sign-in sets the __Host- refresh cookie (Secure,
    HttpOnly, SameSite=Strict, Path=/, no Domain) instead of a body token; refresh
    spends it for a new one; sign-out revokes the session and clears it."""
    email = tls_gateway.stack.add_user()
    browser = (("Origin", ORIGIN),)

    signed_in = tls_gateway.request("POST", "/v1/auth/signin",
                                    {"email": email, "password": PASSWORD}, browser)
    first = cookie_of(signed_in)
    assert signed_in.status == 200 and first is not None, signed_in.body
    with_cookie = (*browser, ("Cookie", f"{COOKIE}={first.value}"))
    refreshed = tls_gateway.request("POST", "/v1/auth/refresh", {}, with_cookie)
    second = cookie_of(refreshed)
    assert refreshed.status == 200 and second is not None, refreshed.body
    signed_out = tls_gateway.request("POST", "/v1/auth/revoke", {},
                                     (*browser, ("Cookie", f"{COOKIE}={second.value}")))
    cleared = cookie_of(signed_out)
    afterwards = tls_gateway.request("POST", "/v1/auth/refresh", {},
                                     (*browser, ("Cookie", f"{COOKIE}={second.value}")))

    assert "refresh_token" not in signed_in.json and signed_in.json["access_token"]
    assert first["secure"] and first["httponly"] and first["samesite"] == "Strict"
    assert first["path"] == "/" and not first["domain"]
    assert int(first["max-age"]) > 0
    assert signed_in.header("Strict-Transport-Security") == HSTS
    assert "refresh_token" not in refreshed.json and second.value != first.value
    assert refreshed.json["session_id"] == signed_in.json["session_id"]
    assert signed_out.status == 200 and cleared is not None and cleared["max-age"] == "0"
    assert afterwards.status == 401
