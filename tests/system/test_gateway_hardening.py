"""The HTTP edge's answers to hostile requests (the attack reviews),
end to end: the real gateway binary in front of real authsvc, or in front of a
recording fake authsvc where authsvc does not (yet) act on what the gateway
sends.

- Every answer says ``X-Content-Type-Options: nosniff``.
- A 400 for a body the gateway cannot decode has a fixed message and names
  the field where one is known; it never quotes the request.
- A POST that is not ``application/json`` is 415 and never reaches authsvc:
  no sign-in attempt is made, so no audit row is written.
- The client's User-Agent reaches authsvc as ``x-forwarded-user-agent``
  metadata (printable ASCII, at most 256 characters); a client cannot set
  that key itself.

The stack fixtures come from tests/test_gateway.py, which builds the gateway
with ``go build`` and skips without Go.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import code_pb2

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD

# pytest finds fixtures (gateway_binary, stack_factory) by name in this module's
# namespace, so importing them is using them; ruff sees an unused import (F401)
# and, where one is named as a parameter, a redefinition (F811).
from .test_gateway import (  # noqa: F401
    Reply,
    Stack,
    assert_status_body,
    gateway_binary,
    stack_factory,
    start_gateway,
)

MARKER = "<script>"
MAX_USER_AGENT = 256

pytestmark = pytest.mark.go  # needs the Go toolchain (system comes from conftest)


@pytest.fixture(scope="module")
def stack(stack_factory: Any) -> Stack:  # noqa: F811
    """One database, authsvc and gateway for this module's tests."""
    return stack_factory()  # type: ignore[no-any-return]


def request(address: str, method: str, path: str, body: bytes | None = None,
            headers: Sequence[tuple[str, str | bytes]] = ()) -> Reply:
    """One HTTP request with exactly the given headers: no Content-Type or
    User-Agent is added (http.client adds neither)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


JSON = ("Content-Type", "application/json")


def quoted(reply: Reply) -> list[str]:
    """The parts of the requests' ``<script>`` markers an answer holds, raw or
    JSON-escaped ("script" alone is in "description")."""
    body = reply.body.decode().lower()
    return [part for part in ("<", "\\u003c", "script>", "alert") if part in body]


def bad_request_fields(reply: Reply) -> list[str]:
    """The field names of a google.rpc.BadRequest detail in an error body."""
    return [violation["field"]
            for detail in reply.json["details"] if detail["@type"].endswith("google.rpc.BadRequest")
            for violation in detail["field_violations"]]


def signin_events(stack: Stack) -> int:
    """How many sign-in attempts authsvc has audited (success, failure, throttled)."""
    async def count() -> int:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM auth_events WHERE kind LIKE 'signin.%'"))
        finally:
            await conn.close()
    return asyncio.run(count())


# --- X-Content-Type-Options ---------------------------------------------------------


def test_every_answer_says_nosniff(stack: Stack) -> None:
    """Successes, authsvc's refusals, the gateway's own refusals, the JWKS, the probes
    and routing errors all carry X-Content-Type-Options: nosniff."""
    email = stack.add_user()
    credentials = f'{{"email": "{email}", "password": "{PASSWORD}"}}'.encode()
    cases = {
        "sign-in 200": ("POST", "/v1/auth/signin", credentials, [JSON]),
        "validate 401": ("POST", "/v1/auth/validate", b"{}", [JSON]),
        "bad email 400": ("POST", "/v1/auth/signin", b'{"email": "x", "password": "y"}', [JSON]),
        "undecodable 400": ("POST", "/v1/auth/signin", b"{not json", [JSON]),
        "two credentials 400": ("POST", "/v1/auth/validate", b"{}",
                                [JSON, ("Authorization", "Bearer a"),
                                 ("Authorization", "Bearer b")]),
        "text/plain 415": ("POST", "/v1/auth/signin", credentials,
                           [("Content-Type", "text/plain")]),
        "jwks": ("GET", "/.well-known/jwks.json", None, []),
        "jwks v1": ("GET", "/v1/auth/jwks", None, []),
        "healthz": ("GET", "/healthz", None, []),
        "readyz": ("GET", "/readyz", None, []),
        "unknown path 404": ("GET", "/v1/nope", None, []),
        "wrong method 405": ("GET", "/v1/auth/signin", None, []),
    }

    replies = {name: request(stack.address, method, path, body, headers)
               for name, (method, path, body, headers) in cases.items()}

    statuses = {name: reply.status for name, reply in replies.items()}
    assert statuses == {"sign-in 200": 200, "validate 401": 401, "bad email 400": 400,
                        "undecodable 400": 400, "two credentials 400": 400,
                        "text/plain 415": 415, "jwks": 200, "jwks v1": 200, "healthz": 200,
                        "readyz": 200, "unknown path 404": 404, "wrong method 405": 405}
    sniffable = {name: reply.header("X-Content-Type-Options")
                 for name, reply in replies.items()
                 if reply.header("X-Content-Type-Options") != "nosniff"}
    assert sniffable == {}


# --- 400s quote nothing of the request ----------------------------------------------


@pytest.mark.parametrize(("path", "body", "field"), [
    pytest.param("/v1/auth/signin", b"<script>alert(1)</script>", "request", id="not-json"),
    pytest.param("/v1/auth/signin", b'{"<script>": }', "request", id="broken-member"),
    pytest.param("/v1/auth/validate", b'["<script>"]', "request", id="not-an-object"),
    pytest.param("/v1/auth/revoke", b'{"token": "t", "all_sessions": "<script>"}',
                 "all_sessions", id="string-for-a-bool"),
    pytest.param("/v1/auth/revoke", b'{"token": "t", "token_type_hint": {"<script>": 1}}',
                 "token_type_hint", id="object-for-an-enum"),
    pytest.param("/v1/auth/signin", b'{"email": "a@example.com", "password": ["<script>"]}',
                 "password", id="list-for-a-string"),
    pytest.param("/v1/auth/signin", b'{"email": "a@example.com", "phone": "<script>"}',
                 "identifier", id="two-identifiers"),
    pytest.param("/v1/auth/refresh", b'{"refresh_token": "a", "refreshToken": "<script>"}',
                 "refresh_token", id="field-given-twice"),
])
def test_undecodable_body_gets_a_fixed_400_naming_the_field(
        stack: Stack, path: str, body: bytes, field: str) -> None:
    """protojson's error text quotes the request; the gateway's 400 does not: a fixed
    message, ErrorInfo INVALID_ARGUMENT and a BadRequest naming the field (or
    ``request`` for the body as a whole), as authsvc's own 400s have."""
    reply = request(stack.address, "POST", path, body, [JSON])

    assert reply.status == 400
    assert_status_body(reply, code_pb2.INVALID_ARGUMENT)
    assert reply.reason() == "INVALID_ARGUMENT"
    assert bad_request_fields(reply) == [field]
    assert reply.json["message"].startswith(f"{field}: ")
    assert quoted(reply) == [], reply.body
    assert reply.header("X-Content-Type-Options") == "nosniff"


def test_invalid_grpc_timeout_header_is_not_quoted(stack: Stack) -> None:
    """grpc-gateway refuses a malformed Grpc-Timeout header with a message quoting it;
    the gateway answers a fixed message instead."""
    reply = request(stack.address, "POST", "/v1/auth/validate", b"{}",
                    [JSON, ("Grpc-Timeout", MARKER)])

    assert reply.status == 400
    assert_status_body(reply, code_pb2.INVALID_ARGUMENT)
    assert quoted(reply) == [], reply.body


def test_unknown_members_are_still_ignored(stack: Stack) -> None:
    """RFC 6749 section 3.2: an unknown member, even an odd one, does not fail a sign-in."""
    email = stack.add_user()
    body = f'{{"{MARKER}": [1, {{}}], "email": "{email}", "password": "{PASSWORD}"}}'.encode()

    reply = request(stack.address, "POST", "/v1/auth/signin", body, [JSON])

    assert reply.status == 200, reply.body


# --- POST bodies must be application/json -------------------------------------------


@pytest.mark.parametrize("content_type", [
    pytest.param(None, id="missing"),
    pytest.param("text/plain", id="text-plain"),
    pytest.param("text/plain;charset=UTF-8", id="text-plain-charset"),
    pytest.param("application/x-www-form-urlencoded", id="form"),
    pytest.param("multipart/form-data; boundary=x", id="multipart"),
    pytest.param("application/jsonx", id="lookalike"),
    pytest.param("application/json; charset=iso-8859-1", id="other-charset"),
    pytest.param("application/json, text/plain", id="list"),
])
def test_non_json_post_gets_415_and_never_reaches_authsvc(
        stack: Stack, content_type: str | None) -> None:
    """A browser may send text/plain, form and multipart bodies cross-origin without a
    CORS preflight; such a sign-in is refused with 415 before authsvc makes any
    attempt (no audit row), even with the right password."""
    email = stack.add_user()
    credentials = f'{{"email": "{email}", "password": "{PASSWORD}"}}'.encode()
    headers = [] if content_type is None else [("Content-Type", content_type)]
    before = signin_events(stack)

    reply = request(stack.address, "POST", "/v1/auth/signin", credentials, headers)
    after = signin_events(stack)
    accepted = request(stack.address, "POST", "/v1/auth/signin", credentials, [JSON])

    assert reply.status == 415
    assert_status_body(reply, code_pb2.INVALID_ARGUMENT)
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.header("Cache-Control") == "no-store"
    assert after == before, "authsvc was called"
    assert accepted.status == 200 and signin_events(stack) == before + 1


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON;Charset=\"UTF-8\"",
])
def test_json_media_type_is_matched_case_insensitively_with_parameters(
        stack: Stack, content_type: str) -> None:
    """application/json is accepted in any case and with a charset=utf-8 parameter."""
    email = stack.add_user()
    credentials = f'{{"email": "{email}", "password": "{PASSWORD}"}}'.encode()

    reply = request(stack.address, "POST", "/v1/auth/signin", credentials,
                    [("Content-Type", content_type)])

    assert reply.status == 200, reply.body


# --- the client's User-Agent, for authsvc's audit log -------------------------------


class _RecordingAuth(auth_pb2_grpc.AuthServicer):
    """SignIn records the metadata it was called with and answers an empty token."""

    def __init__(self) -> None:
        self.metadata: list[tuple[tuple[str, str | bytes], ...]] = []

    def SignIn(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.metadata.append(tuple(context.invocation_metadata()))
        return auth_pb2.SignInResponse(token_type="Bearer")


@pytest.fixture(scope="module")
def recording() -> Iterator[tuple[_RecordingAuth, str]]:
    """A gateway (built from gateway/) in front of _RecordingAuth: the fake and the
    gateway's host:port."""
    fake = _RecordingAuth()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    auth_pb2_grpc.add_AuthServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture(scope="module")
def recording_edge(gateway_binary: Path,  # noqa: F811 (the fixture imported above)
                   recording: tuple[_RecordingAuth, str]) -> Iterator[tuple[_RecordingAuth, str]]:
    fake, upstream = recording
    gateway, address = start_gateway(gateway_binary, upstream)
    yield fake, address
    gateway.stop()


def _forwarded(metadata: tuple[tuple[str, str | bytes], ...]) -> list[str | bytes]:
    return [value for key, value in metadata if key == "x-forwarded-user-agent"]


@pytest.mark.parametrize(("sent", "forwarded"), [
    pytest.param("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
                 "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", id="plain"),
    pytest.param("caf\u00e9-client/1.0\t(b\u00eata)".encode(),
                 "caf??-client/1.0?(b??ta)", id="non-ascii-and-tab"),
    pytest.param("A" * 1000, "A" * MAX_USER_AGENT, id="too-long"),
])
def test_client_user_agent_reaches_authsvc_as_x_forwarded_user_agent(
        recording_edge: tuple[_RecordingAuth, str], sent: str | bytes, forwarded: str) -> None:
    """authsvc sees the HTTP client's User-Agent as x-forwarded-user-agent metadata,
    printable ASCII (others become ?) and at most 256 characters; a client's own
    X-Forwarded-User-Agent header does not become that metadata."""
    fake, address = recording_edge

    reply = request(address, "POST", "/v1/auth/signin", b"{}",
                    [JSON, ("User-Agent", sent), ("X-Forwarded-User-Agent", "forged/1.0")])

    assert reply.status == 200, reply.body
    assert _forwarded(fake.metadata[-1]) == [forwarded]


def test_a_client_cannot_set_x_forwarded_user_agent_itself(
        recording_edge: tuple[_RecordingAuth, str]) -> None:
    """Without a User-Agent, no x-forwarded-user-agent reaches authsvc, whatever
    X-Forwarded-User-Agent or grpcgateway-prefixed header the client sends; the
    Grpc-Metadata- way of setting metadata is refused outright."""
    fake, address = recording_edge

    plain = request(address, "POST", "/v1/auth/signin", b"{}",
                    [JSON, ("X-Forwarded-User-Agent", "forged/1.0"),
                     ("Grpcgateway-X-Forwarded-User-Agent", "forged/2.0")])
    metadata = fake.metadata[-1]
    calls = len(fake.metadata)
    smuggled = request(address, "POST", "/v1/auth/signin", b"{}",
                       [JSON, ("Grpc-Metadata-X-Forwarded-User-Agent", "forged/3.0")])

    assert plain.status == 200, plain.body
    assert _forwarded(metadata) == []
    assert not [v for _, v in metadata if isinstance(v, str) and "forged" in v], metadata
    assert smuggled.status == 400 and len(fake.metadata) == calls
