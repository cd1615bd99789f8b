"""IntrospectRefreshToken: RFC 7662 answers for refresh tokens, for the gateway."""

from __future__ import annotations

import grpc

from authsvc.domain.caller import Caller
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, bearer, fails, sign_in, travel

SCOPE = "authsvc.introspect"


async def introspector(app) -> str:
    """An access token of a service account holding scope authsvc.introspect."""
    await app.accounts.add("email", "introspector@example.com", PASSWORD, (SCOPE,))
    signed_in = await app.sign_in.sign_in("email", "introspector@example.com", PASSWORD,
                                          Caller())
    return signed_in.tokens.access_token


def introspect(stub, caller, token):
    return stub.IntrospectRefreshToken(
        auth_pb2.IntrospectRefreshTokenRequest(refresh_token=token), metadata=bearer(caller))


async def test_a_live_refresh_token_is_active_with_its_session(app, stub, user):
    """An unspent refresh token of a live session is active, with its user, session and
    the session's end; introspecting it spends nothing."""
    caller = await introspector(app)
    alice = await sign_in(stub)

    found = await introspect(stub, caller, alice.refresh_token)
    refreshed = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token))

    assert (found.active, found.user_id, found.session_id) == (True, alice.user_id,
                                                               alice.session_id)
    assert found.expires_at.seconds > 0
    assert refreshed.session_id == alice.session_id


async def test_spent_revoked_and_unknown_refresh_tokens_are_inactive(app, stub, user):
    """A spent token, a revoked session's token and anything else are just inactive."""
    caller = await introspector(app)
    spent = await sign_in(stub)
    await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=spent.refresh_token))
    revoked = await sign_in(stub)
    await stub.Revoke(auth_pb2.RevokeRequest(token=revoked.refresh_token))

    answers = [await introspect(stub, caller, token)
               for token in (spent.refresh_token, revoked.refresh_token, "nope", "", "x" * 600)]

    assert answers == [auth_pb2.IntrospectRefreshTokenResponse(active=False)] * 5


async def test_introspection_needs_the_introspect_scope(stub, user):
    """Without a token the answer is UNAUTHENTICATED; with one lacking scope
    authsvc.introspect it is PERMISSION_DENIED."""
    alice = await sign_in(stub)

    anonymous = await fails(stub.IntrospectRefreshToken(
        auth_pb2.IntrospectRefreshTokenRequest(refresh_token=alice.refresh_token)))
    unscoped = await fails(introspect(stub, alice.access_token, alice.refresh_token))

    assert (anonymous.code, anonymous.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                                  "TOKEN_MISSING")
    assert (unscoped.code, unscoped.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                                "INSUFFICIENT_SCOPE")


async def test_a_refresh_token_of_an_ended_session_is_inactive(app, stub, user, clock, settings,
                                                               database_url):
    """Past the session's idle lifetime its refresh token is inactive, as Refresh refuses it."""
    await introspector(app)
    alice = await sign_in(stub)

    await travel(database_url, settings.session_idle_ttl + 1, clock)
    caller = await introspector_again(app)
    found = await introspect(stub, caller, alice.refresh_token)
    refused = await fails(stub.Refresh(auth_pb2.RefreshRequest(
        refresh_token=alice.refresh_token)))

    assert found == auth_pb2.IntrospectRefreshTokenResponse(active=False)
    assert refused.reason == "REFRESH_TOKEN_INVALID"


async def introspector_again(app) -> str:
    """A fresh access token of the introspector account (the clock moved on)."""
    signed_in = await app.sign_in.sign_in("email", "introspector@example.com", PASSWORD,
                                          Caller())
    return signed_in.tokens.access_token
