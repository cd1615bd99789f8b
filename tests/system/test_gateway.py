"""The HTTP edge end to end: the real gateway binary in front of real authsvc.

Builds gateway/ with ``go build``, starts ``authsvc serve`` and the gateway as
subprocesses on free ports (both listen on port 0 and log the port they
got), and talks HTTP to the gateway with http.client. Mappings that authsvc
cannot be made to produce on demand (403, 429) are checked against a small
fake authsvc; the Go unit tests (run here too) cover the rest of the error
handler. Without Go the tests skip, naming what to install; with CI=true
they fail instead.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from authsvc.core.tokens import PROFILE_CLAIMS
from authsvc.v1 import auth_pb2_grpc

from ..helpers import PASSWORD, eventually_blocking

pytestmark = pytest.mark.go  # needs the Go toolchain (system comes from conftest)
ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 60.0
REALM = 'Bearer realm="authsvc"'


# --- processes ---------------------------------------------------------------


class Process:
    """A subprocess whose stderr is collected by a thread, so it never blocks."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(argv, env={**os.environ, **(env or {})},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:  # closed at its end, not left to the garbage collector
            for line in self.proc.stderr:
                with self._lock:
                    self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        """The first stderr line matching ``pattern``; fails if the process exits first."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def matched() -> bool:
            with self._lock:
                lines = list(self.lines)
            found.extend(m for line in lines if (m := regex.search(line)))
            if not found and self.proc.poll() is not None:
                pytest.fail(f"exited {self.proc.returncode}:\n" + "\n".join(lines))
            return bool(found)

        eventually_blocking(matched, timeout,
                            lambda: f"a line matching {pattern!r}:\n" + "\n".join(self.lines))
        return found[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _require_go() -> str:
    go = shutil.which("go")
    if go is None:
        message = ("the gateway tests need Go 1.26+ on PATH to build gateway/ "
                   "(https://go.dev/dl/, or your distribution's golang package)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return go


@pytest.fixture(scope="session")
def gateway_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gateway/ built with ``go build`` into a temporary directory."""
    go = _require_go()
    out = tmp_path_factory.mktemp("gateway") / "authsvc-gateway"
    subprocess.run([go, "build", "-o", str(out), "."], cwd=ROOT / "gateway",
                   check=True, timeout=600)
    return out


def start_gateway(binary: Path, upstream: str) -> tuple[Process, str]:
    """A gateway on a free port in front of ``upstream``; returns it and its host:port."""
    gateway = Process([str(binary), "--listen", "127.0.0.1:0", "--upstream", upstream])
    address = gateway.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)
    return gateway, address


# --- a whole stack: database, authsvc, gateway ---------------------------------


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _create_database(admin_url: str, name: str, template: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()


async def _drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class Stack:
    """authsvc and the gateway in front of it, on one fresh database."""

    database_url: str
    authsvc: Process
    gateway: Process
    address: str  # the gateway's host:port
    env: dict[str, str] = field(default_factory=dict)  # AUTHSVC_* for authsvc and its CLI

    def add_user(self, password: str = PASSWORD) -> str:
        """Creates a user with a fresh email through the CLI; returns the email."""
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        result = subprocess.run(
            [str(VENV_BIN / "authsvc"), "users", "add", "--email", email, "--password-stdin",
             "--database-url", self.database_url],
            input=password, text=True, capture_output=True, timeout=60,
            env={**os.environ, **self.env})
        assert result.returncode == 0, result.stderr
        return email

    def sign_in(self) -> dict[str, Any]:
        reply = call(self.address, "POST", "/v1/auth/signin",
                     {"email": self.add_user(), "password": PASSWORD})
        assert reply.status == 200, reply
        return reply.json


@pytest.fixture(scope="module")
def stack_factory(pg_admin_url: str, template_name: str,
                  gateway_binary: Path) -> Iterator[Any]:
    """Starts stacks (``env`` adds AUTHSVC_* settings); stops them all at the end."""
    started: list[tuple[Stack, str]] = []

    def start(env: dict[str, str] | None = None) -> Stack:
        name = f"authsvc_edge_{uuid.uuid4().hex[:12]}"
        asyncio.run(_create_database(pg_admin_url, name, template_name))
        url = _with_database(pg_admin_url, name)
        kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        settings = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
                    "AUTHSVC_KEY_ENCRYPTION_KEY": kek,
                    "AUTHSVC_METRICS_LISTEN": "127.0.0.1:0",  # several stacks run at once
                    "AUTHSVC_SHUTDOWN_GRACE": "0.5",
                    **(env or {})}
        authsvc = Process(
            [str(VENV_BIN / "authsvc"), "serve", "--listen", "127.0.0.1:0", "--workers", "1",
             "--database-url", url], env=settings)
        upstream = authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
        gateway, address = start_gateway(gateway_binary, upstream)
        stack = Stack(url, authsvc, gateway, address, settings)
        started.append((stack, name))
        return stack

    yield start
    for stack, _ in started:  # signal all first: they shut down in parallel
        for process in (stack.gateway, stack.authsvc):
            if process.proc.poll() is None:
                process.proc.terminate()
    for stack, name in started:
        stack.gateway.stop()
        stack.authsvc.stop()
        asyncio.run(_drop_database(pg_admin_url, name))


@pytest.fixture(scope="module")
def stack(stack_factory: Any) -> Stack:
    """One stack shared by the tests that leave it running."""
    return stack_factory()  # type: ignore[no-any-return]


# --- HTTP ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def reason(self) -> str | None:
        """The ErrorInfo reason of a google.rpc.Status body."""
        for detail in self.json.get("details", []):
            if detail["@type"].endswith("google.rpc.ErrorInfo"):
                return str(detail["reason"])
        return None


def call(address: str, method: str, path: str, body: Any = None,
         headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
         raw: bytes | None = None) -> Reply:
    """One HTTP request; ``headers`` may repeat a name, which urllib cannot do."""
    host, port = address.rsplit(":", 1)
    return send(http.client.HTTPConnection(host, int(port), timeout=15), method, path, body,
                headers, raw)


def send(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None,
         headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
         raw: bytes | None = None, content_type: str = "application/json") -> Reply:
    """One request on ``conn`` (closed afterwards): ``body`` as JSON, or ``raw`` bytes,
    sent as ``content_type``."""
    try:
        conn.putrequest(method, path)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        for name, value in headers:
            conn.putheader(name, value)
        if data is not None:
            conn.putheader("Content-Type", content_type)
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("Authorization", f"Bearer {token}"),)


def assert_status_body(reply: Reply, code: int) -> None:
    """The body is a google.rpc.Status with ``code`` and no internals."""
    assert reply.header("Content-Type") == "application/json"
    body = reply.json
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert "Traceback" not in reply.body.decode() and "asyncpg" not in reply.body.decode()
    assert not [h for h in reply.headers if h.lower().startswith("grpc-")], reply.headers


# --- the token flow ------------------------------------------------------------------


def test_sign_in_returns_an_oauth_token_response(stack: Stack) -> None:
    """POST /v1/auth/signin answers an RFC 6749 token response with proto names."""
    email = stack.add_user()

    reply = call(stack.address, "POST", "/v1/auth/signin", {"email": email, "password": PASSWORD})

    assert reply.status == 200, reply.body
    token = reply.json
    assert set(token) == {"access_token", "token_type", "expires_in", "refresh_token",
                          "refresh_expires_in", "session_id", "user_id", "device_token"}
    assert token["token_type"] == "Bearer"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    assert isinstance(token["refresh_expires_in"], int) and token["refresh_expires_in"] > 0
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("Pragma") == "no-cache"
    assert not [h for h in reply.headers if h.lower().startswith("grpc-")]


def test_validate_takes_the_token_from_the_authorization_header(stack: Stack) -> None:
    """Validate with an empty body reads the single Authorization: Bearer value."""
    token = stack.sign_in()

    reply = call(stack.address, "POST", "/v1/auth/validate", {}, bearer(token["access_token"]))

    assert reply.status == 200, reply.body
    assert reply.json["user_id"] == token["user_id"]
    assert reply.json["session_id"] == token["session_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", reply.json["expires_at"])


def test_validate_takes_the_token_from_the_body(stack: Stack) -> None:
    """Validate also accepts access_token in the JSON body."""
    token = stack.sign_in()

    reply = call(stack.address, "POST", "/v1/auth/validate",
                 {"access_token": token["access_token"]})

    assert reply.status == 200, reply.body
    assert reply.json["user_id"] == token["user_id"]


def test_userinfo_answers_the_profile_by_its_oidc_names(stack: Stack) -> None:
    """GET /v1/auth/userinfo answers the user's email and its verified flag, and no
    phone or username claims for a user who has neither."""
    email = stack.add_user()
    token = call(stack.address, "POST", "/v1/auth/signin",
                 {"email": email, "password": PASSWORD}).json

    reply = call(stack.address, "GET", "/v1/auth/userinfo",
                 headers=bearer(token["access_token"]))

    assert reply.status == 200, reply.body
    assert reply.json["sub"] == token["user_id"]
    assert {k: v for k, v in reply.json.items() if k in PROFILE_CLAIMS} == {
        "email": email, "email_verified": True}
    assert reply.header("Cache-Control") == "no-store"


def test_refresh_rotates_the_refresh_token(stack: Stack) -> None:
    """Refresh answers a new token pair in the same session."""
    token = stack.sign_in()

    reply = call(stack.address, "POST", "/v1/auth/refresh",
                 {"refresh_token": token["refresh_token"]})

    assert reply.status == 200, reply.body
    assert reply.json["session_id"] == token["session_id"]
    assert reply.json["refresh_token"] != token["refresh_token"]
    assert isinstance(reply.json["expires_in"], int)
    assert reply.header("Cache-Control") == "no-store"


def refused_in_time(address: str, access_token: str, timeout: float, what: str) -> Reply:
    """The first answer of /v1/auth/validate for ``access_token`` that is not 200,
    asking until ``timeout`` seconds have passed (then the test fails, naming ``what``)."""
    replies: list[Reply] = []

    def refused() -> bool:
        replies.append(call(address, "POST", "/v1/auth/validate", {}, bearer(access_token)))
        return replies[-1].status != 200

    eventually_blocking(refused, timeout, f"{what} to be refused", interval=0.05)
    return replies[-1]


def test_revoked_token_gets_401_with_a_challenge(stack: Stack) -> None:
    """After Revoke, the access token gets 401 and an RFC 6750 invalid_token challenge."""
    token = stack.sign_in()

    revoked = call(stack.address, "POST", "/v1/auth/revoke", {"token": token["access_token"]})
    reply = refused_in_time(stack.address, token["access_token"], 5, "the revoked token")

    assert revoked.status == 200 and revoked.json == {}
    assert reply.status == 401
    assert_status_body(reply, code_pb2.UNAUTHENTICATED)
    assert reply.reason() == "TOKEN_REVOKED"
    challenge = reply.header("WWW-Authenticate")
    assert challenge is not None and challenge.startswith(REALM + ', error="invalid_token"')
    refresh = call(stack.address, "POST", "/v1/auth/refresh",
                   {"refresh_token": token["refresh_token"]})
    assert refresh.status == 401 and refresh.reason() == "REFRESH_TOKEN_INVALID"


def test_expired_token_gets_401_with_a_challenge(stack_factory: Any) -> None:
    """An expired access token gets 401, reason TOKEN_EXPIRED, and an invalid_token challenge."""
    short = stack_factory({"AUTHSVC_ACCESS_TOKEN_TTL": "1", "AUTHSVC_CLOCK_LEEWAY": "0"})
    token = short.sign_in()

    # authsvc runs as its own process here, on the real clock: the token expires a
    # second after it was issued (exp is in whole seconds), so wait for that.
    reply = refused_in_time(short.address, token["access_token"], 10, "the token to expire")

    assert reply.status == 401
    assert_status_body(reply, code_pb2.UNAUTHENTICATED)
    assert reply.reason() == "TOKEN_EXPIRED"
    challenge = reply.header("WWW-Authenticate")
    assert challenge is not None and challenge.startswith(REALM + ', error="invalid_token"')


# --- error mappings -----------------------------------------------------------------


def test_wrong_password_gets_401_without_user_input_in_the_challenge(stack: Stack) -> None:
    """A failed sign-in is 401 INVALID_CREDENTIALS; nothing the client sent is echoed."""
    email = stack.add_user()

    reply = call(stack.address, "POST", "/v1/auth/signin",
                 {"email": email, "password": "not-the-password-\"xyz"})

    assert reply.status == 401
    assert_status_body(reply, code_pb2.UNAUTHENTICATED)
    assert reply.reason() == "INVALID_CREDENTIALS"
    challenge = reply.header("WWW-Authenticate") or ""
    assert challenge.startswith(REALM)
    assert email not in challenge and "xyz" not in challenge
    assert email not in reply.body.decode() and "xyz" not in reply.body.decode()


def test_repeated_failures_get_429_with_retry_after(stack: Stack) -> None:
    """authsvc's tarpit (RESOURCE_EXHAUSTED with RetryInfo) is 429 with Retry-After seconds."""
    email = stack.add_user()
    wrong = {"email": email, "password": "wrong"}

    replies = [call(stack.address, "POST", "/v1/auth/signin", wrong) for _ in range(8)]

    limited = [r for r in replies if r.status == 429]
    assert {r.status for r in replies} <= {401, 429}
    assert limited, [r.status for r in replies]
    assert_status_body(limited[0], code_pb2.RESOURCE_EXHAUSTED)
    assert limited[0].reason() == "RATE_LIMITED"
    retry_after = limited[0].header("Retry-After") or ""
    assert retry_after.isdigit() and int(retry_after) >= 1


def test_missing_token_gets_a_bare_challenge(stack: Stack) -> None:
    """Validate without any token: 401 TOKEN_MISSING and a challenge without error=."""
    reply = call(stack.address, "POST", "/v1/auth/validate", {})

    assert reply.status == 401
    assert reply.reason() == "TOKEN_MISSING"
    assert reply.header("WWW-Authenticate") == REALM


def test_garbage_token_gets_invalid_token(stack: Stack) -> None:
    """A malformed bearer token is 401 TOKEN_INVALID, the token not echoed."""
    reply = call(stack.address, "POST", "/v1/auth/validate", {}, bearer("not.a.jwt"))

    assert reply.status == 401
    assert reply.reason() == "TOKEN_INVALID"
    challenge = reply.header("WWW-Authenticate") or ""
    assert challenge.startswith(REALM + ', error="invalid_token"')
    assert "not.a.jwt" not in challenge


def test_invalid_argument_gets_400_naming_the_field(stack: Stack) -> None:
    """A malformed email is 400 with a google.rpc.BadRequest naming the field."""
    reply = call(stack.address, "POST", "/v1/auth/signin",
                 {"email": "not an email", "password": "x"})

    assert reply.status == 400
    assert_status_body(reply, code_pb2.INVALID_ARGUMENT)
    bad = [d for d in reply.json["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert bad and bad[0]["field_violations"][0]["field"] == "email"
    assert reply.header("WWW-Authenticate") is None


def test_malformed_json_gets_400(stack: Stack) -> None:
    """A body that is not JSON never reaches authsvc: 400 INVALID_ARGUMENT."""
    reply = call(stack.address, "POST", "/v1/auth/signin", raw=b"{not json")

    assert reply.status == 400
    assert_status_body(reply, code_pb2.INVALID_ARGUMENT)


@pytest.mark.parametrize("headers", [
    pytest.param([("Authorization", "Bearer {t}"), ("Authorization", "Bearer {t}")],
                 id="two-authorization-headers"),
    pytest.param([("Authorization", "Bearer {t}"), ("Grpc-Metadata-Authorization", "Bearer x")],
                 id="grpc-metadata-authorization"),
    pytest.param([("Grpc-Metadata-Authorization", "Bearer {t}")],
                 id="grpc-metadata-authorization-alone"),
])
def test_smuggled_credentials_are_refused(stack: Stack, headers: list[tuple[str, str]]) -> None:
    """A second credential is refused with 400 invalid_request, not half-trusted."""
    token = stack.sign_in()["access_token"]

    reply = call(stack.address, "POST", "/v1/auth/validate", {},
                 [(k, v.format(t=token)) for k, v in headers])

    assert reply.status == 400
    assert_status_body(reply, code_pb2.INVALID_ARGUMENT)
    assert reply.header("WWW-Authenticate") == REALM + ', error="invalid_request"'


# --- JWKS and health ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/v1/auth/jwks"])
def test_jwks_is_an_rfc7517_document_and_cacheable(stack: Stack, path: str) -> None:
    """Both JWKS paths answer {"keys": [...]} with public keys only, cacheable for 60 s
    (the gateway's default, authsvc's default key publish-ahead)."""
    reply = call(stack.address, "GET", path)

    assert reply.status == 200
    assert reply.header("Cache-Control") == "public, max-age=60"
    keys = reply.json["keys"]
    assert set(reply.json) == {"keys"} and keys
    for key in keys:
        assert key["kty"] in {"EC", "OKP", "RSA"} and key["kid"] and key["alg"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private key material"
        assert all(value != "" for value in key.values()), key


def test_health_and_readiness_follow_authsvc(stack_factory: Any) -> None:
    """/healthz is the gateway alone; /readyz and the API answer 503 once authsvc stops."""
    own = stack_factory()
    assert call(own.address, "GET", "/healthz").status == 200
    assert call(own.address, "GET", "/readyz").status == 200

    own.authsvc.stop()

    assert call(own.address, "GET", "/healthz").status == 200
    assert call(own.address, "GET", "/readyz").status == 503
    reply = call(own.address, "POST", "/v1/auth/signin",
                 {"email": "a@example.com", "password": "x"})
    assert reply.status == 503
    assert_status_body(reply, code_pb2.UNAVAILABLE)
    assert "127.0.0.1" not in reply.body.decode() and "dial" not in reply.body.decode()


# --- mappings authsvc cannot be made to produce here: a fake upstream --------------------


class _FakeAuth(auth_pb2_grpc.AuthServicer):
    """SignIn is rate limited (RetryInfo 1.2 s); Validate lacks a scope and
    records the metadata it was called with."""

    def __init__(self) -> None:
        self.metadata: list[tuple[tuple[str, str], ...]] = []

    def SignIn(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort_with_status(rpc_status.to_status(status_pb2.Status(
            code=code_pb2.RESOURCE_EXHAUSTED, message="Too many attempts; retry later.",
            details=[_pack(error_details_pb2.ErrorInfo(reason="RATE_LIMITED", domain="authsvc")),
                     _pack(error_details_pb2.RetryInfo(
                         retry_delay=duration_pb2.Duration(seconds=1, nanos=200_000_000)))])))

    def Validate(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.metadata.append(tuple(context.invocation_metadata()))  # type: ignore[arg-type]
        context.set_trailing_metadata((
            ("www-authenticate",
             'Bearer realm="authsvc", error="insufficient_scope", scope="admin"'),))
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "The token lacks a required scope.")


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@pytest.fixture(scope="module")
def fake_auth() -> _FakeAuth:
    return _FakeAuth()


@pytest.fixture(scope="module")
def fake_edge(gateway_binary: Path, fake_auth: _FakeAuth) -> Iterator[str]:
    """A gateway in front of _FakeAuth; returns the gateway's host:port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    auth_pb2_grpc.add_AuthServicer_to_server(fake_auth, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    gateway, address = start_gateway(gateway_binary, f"127.0.0.1:{port}")
    yield address
    gateway.stop()
    server.stop(grace=None)


def test_rate_limit_gets_429_with_retry_after(fake_edge: str) -> None:
    """RESOURCE_EXHAUSTED is 429 with Retry-After rounded up from RetryInfo."""
    reply = call(fake_edge, "POST", "/v1/auth/signin", {"email": "a@example.com", "password": "x"})

    assert reply.status == 429
    assert_status_body(reply, code_pb2.RESOURCE_EXHAUSTED)
    assert reply.header("Retry-After") == "2"
    assert reply.reason() == "RATE_LIMITED"


def test_missing_scope_gets_403_insufficient_scope(fake_edge: str) -> None:
    """PERMISSION_DENIED is 403 with authsvc's insufficient_scope challenge."""
    reply = call(fake_edge, "POST", "/v1/auth/validate", {}, bearer("x"))

    assert reply.status == 403
    assert_status_body(reply, code_pb2.PERMISSION_DENIED)
    assert reply.header("WWW-Authenticate") == (
        'Bearer realm="authsvc", error="insufficient_scope", scope="admin"')


def test_authorization_reaches_authsvc_once_and_cookies_not_at_all(
        fake_edge: str, fake_auth: _FakeAuth) -> None:
    """authsvc sees exactly one authorization value, no grpcgateway-authorization copy,
    and none of the client's cookies."""
    call(fake_edge, "POST", "/v1/auth/validate", {},
         [("Authorization", "Bearer abc"), ("Cookie", "session=secret")])

    metadata = fake_auth.metadata[-1]
    assert [v for k, v in metadata if k == "authorization"] == ["Bearer abc"]
    assert not [k for k, _ in metadata if k in ("grpcgateway-authorization", "grpcgateway-cookie",
                                                "cookie")]


def test_go_code_is_formatted_vetted_and_its_tests_pass() -> None:
    """gateway/ is gofmt-clean, go vet-clean, and its unit tests (error handler,
    header rules, JSON shapes, against an in-process fake authsvc) pass."""
    go = _require_go()
    gateway = ROOT / "gateway"

    unformatted = subprocess.run([str(Path(go).resolve().parent / "gofmt"), "-l", "."], cwd=gateway,
                                 capture_output=True, text=True, timeout=120)
    vet = subprocess.run([go, "vet", "./..."], cwd=gateway,
                         capture_output=True, text=True, timeout=600)
    tests = subprocess.run([go, "test", "./..."], cwd=gateway,
                           capture_output=True, text=True, timeout=600)

    assert unformatted.returncode == 0 and unformatted.stdout == "", unformatted.stdout
    assert vet.returncode == 0, vet.stdout + vet.stderr
    assert tests.returncode == 0, tests.stdout + tests.stderr


# --- the OpenAPI spec, fuzzed -------------------------------------------------------------

SPEC = ROOT / "openapi/authsvc/v1/auth.swagger.json"
FUZZ_EXAMPLES = 20  # per operation and mode: the whole fuzz stays within ~15 s


def _fuzz(address: str, mode: Any, check: Any) -> None:
    """Runs ``check(case, base_url)`` on generated cases for every operation in the spec."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_path(SPEC)
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode == schemathesis.GenerationMode.NEGATIVE and not list(operation.body):
            continue  # nothing to make invalid in a GET without parameters

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            check(case, f"http://{address}")

        run()


def test_openapi_spec_fuzzing(stack_factory: Any) -> None:
    """Requests generated from the spec never get a 5xx, and every answer matches the spec;
    once authsvc stops, the answers that needed it are 503 Status JSON."""
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        message = "the OpenAPI fuzz test needs schemathesis (pip install -e '.[dev]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        negative_data_rejection,
        not_a_server_error,
        positive_data_acceptance,
    )

    own = stack_factory()
    # The spec cannot state all of the contract, in both directions, so two checks are off:
    # - positive_data_acceptance: proto3 cannot say "required" or "an email", so
    #   schema-valid bodies can still get authsvc's 400 (declared, with a BadRequest);
    # - negative_data_rejection: the proto3 JSON mapping accepts more than the spec
    #   shows (null for any field, enum numbers, unknown members ignored as RFC 6749
    #   section 3.2 asks), so some schema-violating bodies are rightly accepted.
    # Every answer must still match the spec, and none may be a 5xx.
    lenient = [positive_data_acceptance, negative_data_rejection]

    def running(case: Any, base: str) -> None:
        case.call_and_validate(base_url=base, excluded_checks=lenient)

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        _fuzz(own.address, mode, running)

    own.authsvc.stop()

    def stopped(case: Any, base: str) -> None:
        response = case.call(base_url=base)
        assert response.status_code in (400, 503), (response.status_code, response.text)
        case.validate_response(response, excluded_checks=[not_a_server_error, *lenient])

    _fuzz(own.address, GenerationMode.POSITIVE, stopped)
