"""A sign-in the client cancels is judged by its hash, not by whether the answer was
delivered: a right password gives its throttle slot back, a wrong one stays a
failure (before, every cancelled sign-in stayed counted as a failed guess)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc

from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, eventually, fails

EMAIL = "alice@example.com"


async def _failures(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(failures), 0) FROM throttles"))
    finally:
        await conn.close()


async def _blocked_on_a_lock(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND locktype = 'tuple'"
        "    OR (NOT granted AND locktype = 'transactionid')"))


async def test_a_cancelled_sign_in_with_the_right_password_is_not_a_failure(
        stub, user, database_url):
    """The sign-in is held after its hash (the user row locked), the client cancels the
    call, the lock goes: the throttle counters end at 0 failures, and a sign-in after
    it answers tokens."""
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
                                 uuid.UUID(user))
            call = stub.SignIn(auth_pb2.SignInRequest(email=EMAIL, password=PASSWORD))
            await eventually(lambda: _blocked_on_a_lock(holder), 30,
                             "the sign-in waits for the user row")
            call.cancel()
            assert await _failure_of(call) == grpc.StatusCode.CANCELLED
            assert await _failures(database_url) > 0  # still reserved while it waits
    finally:
        await holder.close()

    await eventually(lambda: _none_left(database_url), 30,
                     "the cancelled sign-in gives its slots back")
    signed_in = await stub.SignIn(auth_pb2.SignInRequest(email=EMAIL, password=PASSWORD))
    assert signed_in.access_token


async def _none_left(database_url: str) -> bool:
    return await _failures(database_url) == 0


async def _failure_of(call: grpc.aio.UnaryUnaryCall) -> grpc.StatusCode:
    try:
        await call
    except asyncio.CancelledError:
        return grpc.StatusCode.CANCELLED
    except grpc.RpcError as error:
        return error.code()
    raise AssertionError("the call answered")


async def test_a_wrong_password_stays_a_failure(stub, user, database_url):
    """A wrong password is counted (one failure per counter it charges)."""
    await fails(stub.SignIn(auth_pb2.SignInRequest(email=EMAIL, password="wrong password")))

    assert await _failures(database_url) > 0
