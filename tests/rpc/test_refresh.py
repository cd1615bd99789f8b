"""Refresh: rotation, the grace interval, reuse detection, lifetimes, concurrency."""

from __future__ import annotations

import asyncio
import math
import time

import grpc
import pytest

from authsvc.v1 import auth_pb2

from ..helpers import fails, sign_in, travel


def refresh(stub, token):
    return stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))


async def test_refresh_rotates_the_refresh_token(stub, user):
    """Each refresh returns a new refresh token and access token in the same session."""
    first = await sign_in(stub)

    second = await refresh(stub, first.refresh_token)

    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert (second.session_id, second.user_id) == (first.session_id, user)
    assert second.token_type == "Bearer"
    validated = await stub.Validate(auth_pb2.ValidateRequest(access_token=second.access_token))
    assert validated.session_id == first.session_id


async def test_spent_token_within_grace_gets_the_identical_successor(stub, user, clock,
                                                                     database_url):
    """A retry within the grace interval gets the same successor, not a new branch.
    (The database's clock runs on while the test does, so it stays a second short.)"""
    first = await sign_in(stub)
    second = await refresh(stub, first.refresh_token)
    await travel(database_url, 9, clock)

    again = await refresh(stub, first.refresh_token)

    assert again.refresh_token == second.refresh_token
    third = await refresh(stub, again.refresh_token)
    assert third.session_id == first.session_id


async def test_spent_token_after_grace_revokes_the_session(stub, user, clock, database_url):
    """Reuse after the grace interval is REFRESH_TOKEN_REUSED and kills the session."""
    first = await sign_in(stub)
    second = await refresh(stub, first.refresh_token)
    await travel(database_url, 11, clock)

    failure = await fails(refresh(stub, first.refresh_token))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "REFRESH_TOKEN_REUSED")
    assert 'error="invalid_token"' in failure.challenge
    successor = await fails(refresh(stub, second.refresh_token))
    assert successor.reason == "REFRESH_TOKEN_INVALID"
    for token in (first.access_token, second.access_token):
        validated = await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=token)))
        assert validated.reason == "TOKEN_REVOKED"


async def test_only_the_immediately_previous_token_gets_grace(stub, user, clock):
    """A token two rotations back is reuse even within the grace interval."""
    first = await sign_in(stub)
    second = await refresh(stub, first.refresh_token)
    await refresh(stub, second.refresh_token)

    failure = await fails(refresh(stub, first.refresh_token))

    assert failure.reason == "REFRESH_TOKEN_REUSED"


async def test_reuse_is_audited(stub, app, user, clock, database_url):
    """Reuse detection leaves an auth_events row."""
    first = await sign_in(stub)
    await refresh(stub, first.refresh_token)
    await travel(database_url, 60, clock)
    await fails(refresh(stub, first.refresh_token))

    async with app.db.connection() as conn:
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM auth_events ORDER BY id")]
    assert kinds.count("refresh.reuse_detected") == 1


async def test_fifty_concurrent_refreshes_yield_one_successor(stub, app, user):
    """Concurrent refreshes of one token cannot fork the session."""
    first = await sign_in(stub)

    results = await asyncio.gather(*(refresh(stub, first.refresh_token) for _ in range(50)))

    assert len({r.refresh_token for r in results}) == 1
    async with app.db.connection() as conn:
        counter = await conn.fetchval(
            "SELECT refresh_counter FROM sessions WHERE id = $1::text::uuid", first.session_id)
    assert counter == 1


async def test_session_idle_lifetime_is_enforced(stub, user, clock, database_url):
    """A session unused for longer than the idle lifetime cannot be refreshed."""
    first = await sign_in(stub)
    await travel(database_url, 7 * 86400, clock)

    failure = await fails(refresh(stub, first.refresh_token))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "REFRESH_TOKEN_INVALID")


async def test_session_absolute_lifetime_is_enforced(stub, user, clock, database_url):
    """Even a session in constant use ends at its absolute lifetime."""
    token = (await sign_in(stub)).refresh_token
    for _ in range(4):
        await travel(database_url, 6 * 86400, clock)
        token = (await refresh(stub, token)).refresh_token
    await travel(database_url, 6 * 86400, clock)  # 30 days after sign-in, 6 days after the last use

    failure = await fails(refresh(stub, token))

    assert failure.reason == "REFRESH_TOKEN_INVALID"


async def test_refresh_expires_in_is_the_nearer_of_idle_and_absolute_end(stub, user, clock,
                                                                         database_url):
    """refresh_expires_in counts down to whichever lifetime ends first. (The absolute
    end is the database's, whose clock also ran on for the seconds the test took.)"""
    started = time.monotonic()
    token = (await sign_in(stub)).refresh_token
    for _ in range(4):  # used every 6 days: within the idle lifetime
        await travel(database_url, 6 * 86400, clock)
        token = (await refresh(stub, token)).refresh_token
    await travel(database_url, 2 * 86400, clock)

    response = await refresh(stub, token)  # 26 days in: 4 left of the absolute 30

    took = math.ceil(time.monotonic() - started)
    assert 4 * 86400 - took <= response.refresh_expires_in <= 4 * 86400


@pytest.mark.parametrize("token", ["nope", "A" * 43, "x" * 512])
async def test_unknown_refresh_token_is_invalid(stub, user, token):
    """A token authsvc never issued is REFRESH_TOKEN_INVALID."""
    failure = await fails(refresh(stub, token))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "REFRESH_TOKEN_INVALID")


@pytest.mark.parametrize("token", ["", "x" * 513])
async def test_missing_or_oversize_refresh_token_is_invalid_argument(stub, token):
    """An empty or oversize refresh_token is INVALID_ARGUMENT naming the field."""
    failure = await fails(refresh(stub, token))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT,
                                              ["refresh_token"])


async def test_refresh_of_a_disabled_users_session_is_invalid(stub, app, user):
    """Disabling a user ends their sessions' refresh tokens."""
    first = await sign_in(stub)
    await app.accounts.disable(user)

    failure = await fails(refresh(stub, first.refresh_token))

    assert failure.reason == "REFRESH_TOKEN_INVALID"
