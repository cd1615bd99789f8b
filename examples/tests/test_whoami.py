"""The example service, guarded by the interceptor with a LocalVerifier."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.v1 import auth_pb2
from authsvc.verifiers import LocalVerifier
from examples.whoami import SERVICE, serving
from tests.helpers import PASSWORD, bearer, eventually, fails, sign_in

INVALID = 'Bearer realm="authsvc", error="invalid_token", error_description="{}"'


@pytest.fixture
async def verifier(server, clock, watcher):
    """A LocalVerifier following the authsvc under test, on the same FakeClock, as a
    service account allowed to follow its revocations."""
    async with LocalVerifier(f"127.0.0.1:{server}", clock=clock,
                             access_token=lambda: watcher) as verifier:
        yield verifier


@pytest.fixture
async def whoami(verifier):
    """A channel to the example service, protected by ``verifier``."""
    async with serving(verifier) as port, \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel


def call(channel, method="Get", metadata=()):
    return channel.unary_unary(f"/{SERVICE}/{method}")(b"", metadata=metadata)


async def test_a_good_token_reaches_the_handler_with_its_user_id(whoami, stub, user):
    """The handler reads the caller's user id from the verified claims."""
    signed_in = await sign_in(stub)

    answer = await call(whoami, metadata=bearer(signed_in.access_token))

    assert answer == user.encode()


async def test_streaming_methods_see_the_claims_too(whoami, stub, user):
    """A server-streaming handler reads the same claims on every message."""
    signed_in = await sign_in(stub)

    stream = whoami.unary_stream(f"/{SERVICE}/Watch")(b"", metadata=bearer(
        signed_in.access_token))

    assert [m async for m in stream] == [user.encode()] * 3


async def test_no_token_is_unauthenticated_without_an_error_code(whoami):
    """No authorization metadata: TOKEN_MISSING and a bare challenge (RFC 6750 3.1)."""
    failure = await fails(call(whoami))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert failure.challenge == 'Bearer realm="authsvc"'


async def test_an_expired_token_is_refused(whoami, stub, user, clock):
    """Past exp plus the leeway the token is TOKEN_EXPIRED."""
    signed_in = await sign_in(stub)
    clock.advance(signed_in.expires_in + 30 + 1)

    failure = await fails(call(whoami, metadata=bearer(signed_in.access_token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
    assert failure.challenge == INVALID.format("The access token expired")


async def test_a_forged_token_is_refused(whoami, stub, user):
    """A token signed by another key under authsvc's kid is TOKEN_INVALID."""
    signed_in = await sign_in(stub)
    header = jwt.get_unverified_header(signed_in.access_token)
    claims = jwt.decode(signed_in.access_token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "scope": "example.admin"},
                        ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"kid": header["kid"], "typ": "at+jwt"})

    failure = await fails(call(whoami, "Admin", bearer(forged)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    assert failure.challenge == INVALID.format("The access token is invalid")


async def test_a_revoked_session_is_refused_within_a_second(whoami, stub, user):
    """After Revoke the local verifier refuses the session's token within 1 s,
    having heard it on WatchRevocations (no call to authsvc per request)."""
    signed_in = await sign_in(stub)
    await call(whoami, metadata=bearer(signed_in.access_token))

    await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))
    revoked_at = time.monotonic()
    refusals: list[grpc.RpcError] = []

    async def refused() -> bool:
        try:
            await call(whoami, metadata=bearer(signed_in.access_token))
        except grpc.RpcError as error:
            refusals.append(error)
        return bool(refusals)

    await eventually(refused, 1.0, "the revoked session's token to be refused",
                     interval=0.01)
    took = time.monotonic() - revoked_at
    failure = await fails(call(whoami, metadata=bearer(signed_in.access_token)))

    assert took < 1.0
    assert refusals[0].code() == grpc.StatusCode.UNAUTHENTICATED
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    assert failure.challenge == INVALID.format("The access token's session was revoked")


async def test_a_missing_scope_is_permission_denied(whoami, stub, user):
    """Admin needs example.admin: without it, PERMISSION_DENIED, insufficient_scope."""
    signed_in = await sign_in(stub)

    failure = await fails(call(whoami, "Admin", bearer(signed_in.access_token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                              "INSUFFICIENT_SCOPE")
    assert failure.challenge == (
        'Bearer realm="authsvc", error="insufficient_scope", '
        'error_description="The access token lacks a required scope", scope="example.admin"')


async def test_a_granted_scope_opens_the_method(whoami, stub, app):
    """A user granted example.admin signs in with it in the scope claim and gets in."""
    user_id = await app.accounts.add("email", "root@example.com", PASSWORD, ("example.admin",))
    signed_in = await sign_in(stub, "root@example.com")

    answer = await call(whoami, "Admin", bearer(signed_in.access_token))

    assert answer == b"admin " + user_id.encode()


async def test_a_password_alone_does_not_open_the_sensitive_method(whoami, stub, user):
    """Sensitive needs a second factor at sign-in: a password-only token is refused
    INSUFFICIENT_USER_AUTHENTICATION with the RFC 9470 challenge (the second factors
    guide shows a token with one getting through)."""
    signed_in = await sign_in(stub)

    failure = await fails(call(whoami, "Sensitive", bearer(signed_in.access_token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INSUFFICIENT_USER_AUTHENTICATION")
    assert failure.challenge is not None
    assert failure.challenge.startswith(
        'Bearer realm="authsvc", error="insufficient_user_authentication", ')
    assert failure.challenge.endswith('acr_values="aal2", max_age="300"')
