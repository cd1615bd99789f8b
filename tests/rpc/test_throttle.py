"""Throttling: an exponential tarpit that slows guessing but cannot lock users out."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails, travel

WRONG = "not the password"


@pytest.fixture
async def throttled(settings, database_url, clock):
    """A server with small thresholds that trusts 127.0.0.1 as a proxy, so each call
    can say its client address in x-forwarded-for."""
    tight = dataclasses.replace(
        settings, throttle_identifier_free=3, throttle_address_free=6, throttle_pair_free=2,
        throttle_refresh_free=2, throttle_base_delay=4, throttle_max_delay=60,
        throttle_window=600, trusted_proxies=("127.0.0.1/32",))
    async with running_app(tight, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        yield app, auth_pb2_grpc.AuthStub(channel)


def attempt(stub, password, address, email="alice@example.com"):
    return stub.SignIn(auth_pb2.SignInRequest(email=email, password=password),
                       metadata=(("x-forwarded-for", f"198.51.100.1, {address}"),))


def assert_waits_out(failure, block: int) -> None:
    """RetryInfo asks for what is left of a ``block``-second block, rounded up. Blocks
    run on the database's clock, which runs on while the test does, so a slow machine
    may already have spent a second of it."""
    assert block - 1 <= failure.retry_delay <= block, failure.retry_delay


async def test_pair_counter_blocks_with_retry_info_before_hashing(throttled, clock):
    """After the free failures a call is RESOURCE_EXHAUSTED/RATE_LIMITED with RetryInfo,
    and a right password is refused too while the block lasts."""
    app, stub = throttled
    for _ in range(2):
        assert (await fails(attempt(stub, WRONG, "203.0.113.9"))).reason == \
            "INVALID_CREDENTIALS"
    await fails(attempt(stub, WRONG, "203.0.113.9"))  # third failure: blocked for 4 s

    blocked = await fails(attempt(stub, PASSWORD, "203.0.113.9"))

    assert (blocked.code, blocked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                              "RATE_LIMITED")
    assert_waits_out(blocked, 4)
    async with app.db.connection() as conn:
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM auth_events ORDER BY id")]
    assert kinds.count("signin.failure") == 3  # the blocked call hashed nothing
    assert kinds.count("signin.throttled") == 1


async def test_the_block_doubles_and_expires_by_itself(throttled, clock, database_url):
    """Each further failure doubles the delay; after the block, the right password works."""
    _app, stub = throttled
    for _ in range(3):
        await fails(attempt(stub, WRONG, "203.0.113.9"))
    await travel(database_url, 4, clock)
    await fails(attempt(stub, WRONG, "203.0.113.9"))  # fourth failure: 8 s

    assert_waits_out(await fails(attempt(stub, PASSWORD, "203.0.113.9")), 8)
    await travel(database_url, 8, clock)
    assert (await attempt(stub, PASSWORD, "203.0.113.9")).access_token


async def test_counters_forget_failures_after_the_window(throttled, clock, database_url):
    """Failures older than the window no longer count: no permanent lockout."""
    _app, stub = throttled
    for _ in range(2):
        await fails(attempt(stub, WRONG, "203.0.113.9"))
    await travel(database_url, 601, clock)

    await fails(attempt(stub, WRONG, "203.0.113.9"))

    assert (await attempt(stub, PASSWORD, "203.0.113.9")).access_token


async def test_unknown_identifiers_are_throttled_alike(throttled):
    """An identifier that does not exist is throttled like one that does."""
    _app, stub = throttled
    for _ in range(3):
        await fails(attempt(stub, WRONG, "203.0.113.9", email="ghost@example.com"))

    blocked = await fails(attempt(stub, WRONG, "203.0.113.9", email="ghost@example.com"))

    assert (blocked.code, blocked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")


async def test_distributed_guessing_cannot_lock_out_the_real_user(throttled, clock):
    """Guesses from many addresses block the account for strangers, not for the address
    the user signed in from before."""
    _app, stub = throttled
    await attempt(stub, PASSWORD, "198.51.100.7")  # the user's own address, now trusted
    for i in range(4):
        await fails(attempt(stub, WRONG, f"203.0.113.{i}"))

    stranger = await fails(attempt(stub, PASSWORD, "203.0.113.200"))
    user = await attempt(stub, PASSWORD, "198.51.100.7")

    assert (stranger.code, stranger.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                "RATE_LIMITED")
    assert user.access_token


async def test_one_address_spraying_many_accounts_is_slowed(throttled):
    """The per-address counter catches one address guessing across accounts."""
    _app, stub = throttled
    for i in range(7):
        await fails(attempt(stub, WRONG, "203.0.113.50", email=f"user{i}@example.com"))

    blocked = await fails(attempt(stub, WRONG, "203.0.113.50", email="other@example.com"))

    assert blocked.reason == "RATE_LIMITED"


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(stub, app, user, settings):
    """Without a trusted proxy, x-forwarded-for cannot dodge the pair counter."""
    for i in range(6):
        await fails(attempt(stub, WRONG, f"203.0.113.{i}"))

    blocked = await fails(attempt(stub, PASSWORD, "203.0.113.99"))

    assert blocked.reason == "RATE_LIMITED"
    async with app.db.connection() as conn:
        addresses = {r["client_addr"] for r in await conn.fetch(
            "SELECT client_addr FROM auth_events WHERE kind = 'signin.failure'")}
    assert addresses == {"127.0.0.1"}


async def test_refresh_failures_are_throttled_per_address(throttled):
    """Bad refresh tokens from one address are slowed down too."""
    _app, stub = throttled
    metadata = (("x-forwarded-for", "203.0.113.77"),)
    for _ in range(3):
        await fails(stub.Refresh(auth_pb2.RefreshRequest(refresh_token="bogus"),
                                 metadata=metadata))

    blocked = await fails(stub.Refresh(auth_pb2.RefreshRequest(refresh_token="bogus"),
                                       metadata=metadata))

    assert (blocked.code, blocked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                              "RATE_LIMITED")
    assert_waits_out(blocked, 4)


async def test_throttle_rows_hold_no_identifier(throttled):
    """The throttles table stores HMACs, never the identifier or address."""
    app, stub = throttled
    await fails(attempt(stub, WRONG, "203.0.113.9", email="secret-name@example.com"))

    async with app.db.connection() as conn:
        dump = str(await conn.fetch("SELECT * FROM throttles")) + str(
            await conn.fetch("SELECT * FROM trusted_clients"))
    assert "secret-name" not in dump and "203.0.113" not in dump


async def test_concurrent_sign_ins_of_one_user_never_deadlock(settings, database_url, clock):
    """Many right-password sign-ins of one user from one address at once (each
    success deletes the pair's row, which the next reservation inserts again) all
    succeed: reservations lock their rows, new or old, in one order, so none is
    killed by PostgreSQL's deadlock detector (UNAVAILABLE)."""
    roomy = dataclasses.replace(
        settings, throttle_identifier_free=10_000, throttle_address_free=10_000,
        throttle_pair_free=10_000, trusted_proxies=("127.0.0.1/32",))
    async with running_app(roomy, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        stub = auth_pb2_grpc.AuthStub(channel)
        outcomes = []
        for _ in range(5):
            replies = await asyncio.gather(
                *(attempt(stub, PASSWORD, "203.0.113.9") for _ in range(40)),
                return_exceptions=True)
            outcomes += [r.code() if isinstance(r, grpc.RpcError) else "ok" for r in replies]

    assert outcomes == ["ok"] * 200
