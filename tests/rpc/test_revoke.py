"""Revoke (RFC 7009) and GetJwks."""

from __future__ import annotations

import asyncio

import grpc
import jwt
import pytest

from authsvc.v1 import auth_pb2

from ..helpers import bearer, eventually, fails, parse, sign_in


def refresh(stub, token):
    return stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))


async def test_revoking_a_refresh_token_ends_its_session(stub, user):
    """The refresh token and every access token of its session stop working."""
    signed_in = await sign_in(stub)

    await stub.Revoke(auth_pb2.RevokeRequest(
        token=signed_in.refresh_token,
        token_type_hint=auth_pb2.TOKEN_TYPE_HINT_REFRESH_TOKEN))

    assert (await fails(refresh(stub, signed_in.refresh_token))).reason == \
        "REFRESH_TOKEN_INVALID"
    assert (await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=signed_in.access_token)))).reason == "TOKEN_REVOKED"


async def test_revoking_an_access_token_ends_its_session(stub, user):
    """An access token revokes its whole session, refresh token included."""
    signed_in = await sign_in(stub)

    await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.access_token))

    assert (await fails(refresh(stub, signed_in.refresh_token))).reason == \
        "REFRESH_TOKEN_INVALID"


async def test_a_wrong_hint_does_not_matter(stub, user):
    """A refresh token sent with the access-token hint is still revoked."""
    signed_in = await sign_in(stub)

    await stub.Revoke(auth_pb2.RevokeRequest(
        token=signed_in.refresh_token, token_type_hint=auth_pb2.TOKEN_TYPE_HINT_ACCESS_TOKEN))

    assert (await fails(refresh(stub, signed_in.refresh_token))).reason == \
        "REFRESH_TOKEN_INVALID"


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 43])
async def test_unknown_tokens_answer_ok_and_change_nothing(stub, app, user, token):
    """RFC 7009: an invalid token is not an error, and no session is touched."""
    signed_in = await sign_in(stub)

    await stub.Revoke(auth_pb2.RevokeRequest(token=token))

    await refresh(stub, signed_in.refresh_token)
    async with app.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL") \
            == 0


async def test_revoking_other_sessions_leaves_this_one(stub, user):
    """Revoking one session leaves the user's other sessions alive."""
    first, second = await sign_in(stub), await sign_in(stub)

    await stub.Revoke(auth_pb2.RevokeRequest(token=first.refresh_token))

    await stub.Validate(auth_pb2.ValidateRequest(access_token=second.access_token))


async def test_all_sessions_with_the_callers_bearer_ends_every_session(stub, user):
    """all_sessions revokes every session of the user named by the bearer token."""
    first, second = await sign_in(stub), await sign_in(stub)

    await stub.Revoke(auth_pb2.RevokeRequest(all_sessions=True),
                      metadata=bearer(second.access_token))

    for signed_in in (first, second):
        failure = await fails(stub.Validate(auth_pb2.ValidateRequest(
            access_token=signed_in.access_token)))
        assert failure.reason == "TOKEN_REVOKED"


async def test_all_sessions_without_a_bearer_is_unauthenticated(stub, user):
    """all_sessions needs the caller's bearer token; nothing is revoked without it."""
    signed_in = await sign_in(stub)

    failure = await fails(stub.Revoke(auth_pb2.RevokeRequest(all_sessions=True)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    await refresh(stub, signed_in.refresh_token)


async def test_empty_token_is_invalid_argument(stub):
    """Revoke with neither a token nor all_sessions names the token field."""
    failure = await fails(stub.Revoke(auth_pb2.RevokeRequest()))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["token"])


async def test_disabling_a_user_revokes_all_their_sessions(stub, app, user):
    """A disabled user's access tokens are refused at once."""
    signed_in = await sign_in(stub)

    await app.accounts.disable(user)

    failure = await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=signed_in.access_token)))
    assert failure.reason == "TOKEN_REVOKED"


async def test_revocations_are_audited(stub, app, user):
    """Each revoked session leaves a session.revoked row."""
    signed_in = await sign_in(stub)

    await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))

    async with app.db.connection() as conn:
        rows = await conn.fetch("SELECT session_id::text, user_id::text FROM auth_events"
                                " WHERE kind = 'session.revoked'")
    assert [tuple(r) for r in rows] == [(signed_in.session_id, user)]


async def test_jwks_publishes_public_keys_that_verify_tokens(stub, user):
    """GetJwks returns public JWKs only, and they verify issued tokens."""
    signed_in = await sign_in(stub)

    response = await stub.GetJwks(auth_pb2.GetJwksRequest())

    (key,) = response.keys
    assert (key.kty, key.crv, key.alg, key.use) == ("EC", "P-256", "ES256", "sig")
    assert key.x and key.y and key.kid
    jwk = {f.name: v for f, v in key.ListFields()}
    assert "d" not in jwk
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(signed_in.access_token, public, algorithms=["ES256"],
                        audience="authsvc")
    assert claims["sid"] == signed_in.session_id
    assert jwt.get_unverified_header(signed_in.access_token)["kid"] == key.kid


async def test_watch_revocations_sends_the_set_then_each_revocation(stub, user, watcher):
    """WatchRevocations starts with the current set, then streams new revocations,
    and says "nothing new" with an empty heartbeat while nothing happens."""
    old, new = await sign_in(stub), await sign_in(stub)
    await stub.Revoke(auth_pb2.RevokeRequest(token=old.refresh_token))
    stream = stub.WatchRevocations(auth_pb2.WatchRevocationsRequest(),
                                   metadata=bearer(watcher))

    first = await stream.read()
    await stub.Revoke(auth_pb2.RevokeRequest(token=new.refresh_token))
    second = await stream.read()
    heartbeat = await stream.read()
    stream.cancel()

    assert (list(first.session_ids), first.snapshot) == ([old.session_id], True)
    assert (list(second.session_ids), second.snapshot) == ([new.session_id], False)
    assert (list(heartbeat.session_ids), heartbeat.snapshot) == ([], False)


async def test_watch_revocations_needs_the_feed_scope(stub, user):
    """Without a token the feed is UNAUTHENTICATED; with a token lacking scope
    authsvc.revocations it is PERMISSION_DENIED."""
    alice = await sign_in(stub)

    anonymous = await fails(stub.WatchRevocations(
        auth_pb2.WatchRevocationsRequest()).read())
    unscoped = await fails(stub.WatchRevocations(
        auth_pb2.WatchRevocationsRequest(), metadata=bearer(alice.access_token)).read())

    assert (anonymous.code, anonymous.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                                  "TOKEN_MISSING")
    assert (unscoped.code, unscoped.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                                "INSUFFICIENT_SCOPE")


async def test_one_peer_holds_at_most_its_share_of_feed_streams(stub, watcher, settings):
    """Each client address holds at most AUTHSVC_WATCH_STREAMS_PER_PEER streams; the
    next is RESOURCE_EXHAUSTED / RATE_LIMITED, and a slot frees when a stream ends."""
    streams = [stub.WatchRevocations(auth_pb2.WatchRevocationsRequest(),
                                     metadata=bearer(watcher))
               for _ in range(settings.watch_streams_per_peer)]
    for stream in streams:
        assert (await stream.read()).snapshot

    refused = await fails(stub.WatchRevocations(
        auth_pb2.WatchRevocationsRequest(), metadata=bearer(watcher)).read())
    streams[0].cancel()
    await eventually(lambda: admitted(stub, watcher), 10,
                     "a stream to be admitted once one was cancelled", interval=0.05)
    for stream in streams:
        stream.cancel()

    assert (refused.code, refused.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                              "RATE_LIMITED")


async def admitted(stub, watcher: str) -> bool:
    """Whether a new stream is admitted and starts with a snapshot (until the server
    has noticed a cancelled one, the peer's share is still taken)."""
    stream = stub.WatchRevocations(auth_pb2.WatchRevocationsRequest(),
                                   metadata=bearer(watcher))
    try:
        first = await stream.read()
    except grpc.RpcError:
        return False
    stream.cancel()
    return bool(first.snapshot)


async def _end_of(stream) -> tuple[list[str], grpc.RpcError]:  # type: ignore[no-untyped-def]
    """Read ``stream`` to its end: the session ids it delivered, and the refusal that
    ended it."""
    delivered: list[str] = []
    try:
        async with asyncio.timeout(30):  # a stream that never ends fails the test
            while True:
                delivered += (await stream.read()).session_ids
    except grpc.RpcError as error:
        return delivered, error


async def test_a_feed_stream_ends_when_its_session_is_revoked(app, stub, user, watcher):
    """The watcher's own session revoked: its open stream delivers the revocation, then
    ends UNAUTHENTICATED TOKEN_REVOKED (as a new stream would be refused)."""
    stream = stub.WatchRevocations(auth_pb2.WatchRevocationsRequest(),
                                   metadata=bearer(watcher))
    assert (await stream.read()).snapshot

    await stub.Revoke(auth_pb2.RevokeRequest(token=watcher))
    delivered, ended = await _end_of(stream)
    failure = parse(ended)

    assert delivered == [jwt.decode(watcher, options={"verify_signature": False})["sid"]]
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_a_feed_stream_ends_when_its_token_expires(app, stub, user, watcher, clock,
                                                         settings):
    """Past the watcher's token's exp (the server's clock), its open stream ends
    UNAUTHENTICATED TOKEN_EXPIRED at the next heartbeat."""
    stream = stub.WatchRevocations(auth_pb2.WatchRevocationsRequest(),
                                   metadata=bearer(watcher))
    assert (await stream.read()).snapshot

    clock.advance(settings.access_token_ttl + 1)
    failure = parse((await _end_of(stream))[1])

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
