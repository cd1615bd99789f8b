"""Client call credentials (authsvc.client.SessionCredentials)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from authsvc.client import SessionCredentials, SessionEnded, session_ended
from authsvc.v1 import auth_pb2
from authsvc.verifiers import LocalVerifier
from examples.whoami import SERVICE, serving

from ..helpers import PASSWORD, fails


@pytest.fixture
async def credentials(server, user, clock):
    """alice's session, signed in once through a sync channel."""
    creds = await asyncio.to_thread(
        SessionCredentials.sign_in, f"127.0.0.1:{server}", email="alice@example.com",
        password=PASSWORD, clock=clock, refresh_before=60)
    yield creds
    creds.close()


async def refreshes(app) -> int:
    async with app.db.connection() as conn:
        return await conn.fetchval("SELECT count(*) FROM auth_events"
                                   " WHERE kind = 'refresh.success'")


async def test_calls_carry_the_bearer_token(server, credentials, clock, user, watcher):
    """An aio channel with the call credentials reaches a guarded service as alice."""
    async with LocalVerifier(f"127.0.0.1:{server}", clock=clock,
                             access_token=lambda: watcher) as verifier, \
            serving(verifier) as port:
        channel_credentials = grpc.composite_channel_credentials(
            grpc.local_channel_credentials(), credentials.call_credentials())
        async with grpc.aio.secure_channel(f"localhost:{port}", channel_credentials) as ch:
            answer = await ch.unary_unary(f"/{SERVICE}/Get")(b"")

    assert answer == user.encode() == credentials.user_id.encode()


async def test_one_refresh_however_many_callers_wait(app, credentials, clock):
    """Past expiry, 16 threads asking at once cause exactly one Refresh and all get
    its token; before the refresh point nothing is refreshed."""
    first = credentials.access_token()
    clock.advance(900 + 1)

    tokens = await asyncio.gather(*(asyncio.to_thread(credentials.access_token)
                                    for _ in range(16)))

    assert len(set(tokens)) == 1 and tokens[0] != first
    assert await refreshes(app) == 1


async def test_the_token_is_refreshed_shortly_before_expiry(app, credentials, clock):
    """Within refresh_before of exp the next call refreshes; earlier ones do not."""
    first = credentials.access_token()
    clock.advance(900 - 61)
    unchanged = await asyncio.to_thread(credentials.access_token)
    clock.advance(2)

    refreshed = await asyncio.to_thread(credentials.access_token)

    assert unchanged == first != refreshed
    assert await refreshes(app) == 1


async def test_a_revoked_session_raises_session_ended(app, credentials, clock, server):
    """Once the session is revoked, the next refresh ends the credentials for good,
    and calls through a channel fail with the SessionEnded message."""
    await app.accounts.revoke_session(credentials.session_id)
    clock.advance(900 + 1)

    with pytest.raises(SessionEnded, match="REFRESH_TOKEN_INVALID"):
        await asyncio.to_thread(credentials.access_token)
    channel_credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), credentials.call_credentials())
    async with grpc.aio.secure_channel(f"localhost:{server}", channel_credentials) as ch:
        with pytest.raises(grpc.RpcError) as raised:
            await ch.unary_unary("/authsvc.v1.Auth/GetJwks")(b"")

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert session_ended(raised.value)
    assert isinstance(credentials.ended, SessionEnded)


async def test_a_wrong_password_fails_at_sign_in(server, user):
    """Signing in with a wrong password raises the RpcError, UNAUTHENTICATED."""
    with pytest.raises(grpc.RpcError) as raised:
        await asyncio.to_thread(SessionCredentials.sign_in, f"127.0.0.1:{server}",
                                email="alice@example.com", password="wrong password")

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_sign_out_revokes_the_session(stub, credentials):
    """sign_out revokes the session at authsvc; the credentials then raise SessionEnded."""
    token = credentials.access_token()

    await asyncio.to_thread(credentials.sign_out)

    with pytest.raises(SessionEnded):
        credentials.access_token()
    failure = await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=token)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
