"""Refresh tokens under attack: reuse, concurrent rotation by owner and thief, near
misses, and the database dying in the middle of a rotation.

Each case but the near misses (which share the ``kit`` server) gets a fresh database.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest

from authsvc.v1 import auth_pb2

from ..helpers import eventually, fails, sign_in, travel
from .attack_helpers import refused, snapshot
from .kit import UNAUTHENTICATED

# --- refresh reuse and concurrency ------------------------------------------------------


def refresh(stub, token):
    return stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))


async def _counter_of(database_url: str, session_id: str) -> tuple[int, bool]:
    """The session's refresh counter, and whether it ever moved."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT refresh_counter, refresh_moved_at FROM sessions"
                                  " WHERE id = $1::text::uuid", session_id)
        return row["refresh_counter"], row["refresh_moved_at"] is not None
    finally:
        await conn.close()


async def test_twenty_concurrent_refreshes_then_reuse_after_grace(stub, user, database_url,
                                                                   clock):
    """Twenty concurrent refreshes of one token all get the one successor; presenting the
    spent token after the grace interval is REFRESH_TOKEN_REUSED and revokes the session."""
    first = await sign_in(stub)

    results = await asyncio.gather(*(refresh(stub, first.refresh_token) for _ in range(20)))

    assert len({r.refresh_token for r in results}) == 1
    assert await _counter_of(database_url, first.session_id) == (1, True)
    await travel(database_url, 11, clock)
    reused = await fails(refresh(stub, first.refresh_token))
    assert (reused.code, reused.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    successor = await fails(refresh(stub, results[0].refresh_token))
    assert successor.reason == "REFRESH_TOKEN_INVALID"
    access = await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=results[0].access_token)))
    assert access.reason == "TOKEN_REVOKED"


async def test_concurrent_reuse_is_detected_once_and_never_errors(stub, app, user,
                                                                   database_url, clock):
    """Twenty concurrent presentations of a spent token after grace: each answer is
    REUSED or INVALID (never INTERNAL), one reuse event, the session revoked, no new token."""
    first = await sign_in(stub)
    await refresh(stub, first.refresh_token)
    await travel(database_url, 11, clock)
    counter_before = await _counter_of(database_url, first.session_id)

    answers = await asyncio.gather(*(fails(refresh(stub, first.refresh_token))
                                     for _ in range(20)))

    reasons = [(a.code, a.reason) for a in answers]
    assert set(reasons) <= {(UNAUTHENTICATED, "REFRESH_TOKEN_REUSED"),
                            (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")}
    assert (UNAUTHENTICATED, "REFRESH_TOKEN_REUSED") in reasons
    async with app.db.connection() as conn:
        events = await conn.fetchval(
            "SELECT count(*) FROM auth_events WHERE kind = 'refresh.reuse_detected'")
        revoked = await conn.fetchval("SELECT revoked_at IS NOT NULL FROM sessions")
    assert (events, revoked) == (1, True)
    assert await _counter_of(database_url, first.session_id) == counter_before


async def test_thief_and_owner_racing_within_grace_cannot_fork_the_session(stub, user,
                                                                            database_url):
    """The spent token and its successor refreshed concurrently, ten times each: the
    session's counter moved once per rotation, each move audited, and every answer
    holds a token of that one line."""
    first = await sign_in(stub)
    second = await refresh(stub, first.refresh_token)

    answers = await asyncio.gather(
        *(refresh(stub, t) for _ in range(10)
          for t in (first.refresh_token, second.refresh_token)), return_exceptions=True)

    for answer in answers:
        assert not isinstance(answer, grpc.RpcError) or answer.code() == UNAUTHENTICATED
    handed_out = {a.refresh_token for a in answers if not isinstance(a, grpc.RpcError)}
    counter, _moved = await _counter_of(database_url, first.session_id)
    assert len(handed_out) <= counter
    await _assert_linear_chains(database_url)


@pytest.mark.parametrize("mangle", [
    lambda t: t + "A", lambda t: t[:-1], lambda t: t.swapcase(), lambda t: t + "=",
    lambda t: "A" * 43, lambda t: " " + t,
], ids=["appended", "truncated", "case-flipped", "padded", "same-length-guess", "leading-space"])
def test_near_miss_refresh_token_is_invalid_and_harmless(kit, mangle):
    """A refresh token altered in any way is REFRESH_TOKEN_INVALID and changes nothing."""
    token = kit.alice.refresh_token
    before = kit.service.snapshot()

    failure = refused(lambda: kit.stub.Refresh(auth_pb2.RefreshRequest(
        refresh_token=mangle(token))))

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    assert kit.service.snapshot() == before


# --- the database dying mid-rotation ----------------------------------------------------


async def _assert_linear_chains(database_url: str) -> None:
    """Every session is one line of refresh tokens: its counter moved only in audited
    rotations (at least as many ``refresh.success`` rows as moves), a counter that
    moved has the time it moved and one that never did has none, and every session
    has its ``signin.success`` row."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT s.id, s.refresh_counter AS counter, s.refresh_moved_at IS NULL AS unmoved,"
            "  (SELECT count(*) FROM auth_events e WHERE e.session_id = s.id"
            "    AND e.kind = 'refresh.success') AS successes,"
            "  (SELECT count(*) FROM auth_events e WHERE e.session_id = s.id"
            "    AND e.kind = 'signin.success') AS sign_ins"
            "  FROM sessions s")
        for r in rows:
            assert r["counter"] >= 0 and r["successes"] >= r["counter"], dict(r)
            assert r["unmoved"] == (r["counter"] == 0) and r["sign_ins"] == 1, dict(r)
    finally:
        await conn.close()


@pytest.mark.parametrize("blocked_at", ["sessions", "auth_events"],
                         ids=["before-rotating", "after-moving-the-counter"])
async def test_database_dying_mid_rotation_leaves_no_orphan_and_no_half_session(
        stub, app, user, database_url, pg_admin_url, blocked_at):
    """Refreshes and sign-ins caught inside their transactions when every connection is
    killed and the database refuses new ones: each caller gets UNAVAILABLE, nothing of
    theirs is committed, and once the database is back every old token still works."""
    signed_in = [await sign_in(stub) for _ in range(6)]
    await _assert_linear_chains(database_url)
    before = await snapshot(database_url)
    name = urlsplit(database_url).path.lstrip("/")
    locker = await asyncpg.connect(database_url)
    lock = locker.transaction()
    await lock.start()
    await locker.execute(f"LOCK TABLE {blocked_at} IN EXCLUSIVE MODE")
    calls = [asyncio.ensure_future(refresh(stub, s.refresh_token)) for s in signed_in]
    if blocked_at == "auth_events":  # a sign-in blocks after inserting its session
        calls += [asyncio.ensure_future(sign_in(stub)) for _ in range(3)]
    admin = await asyncpg.connect(pg_admin_url)

    try:
        await _wait_for_waiters(admin, name, len(calls))
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1 AND pid <> $2", name, locker.get_server_pid())
        answers = await asyncio.gather(*calls, return_exceptions=True)
        await lock.rollback()
        during = {t: [tuple(r.values()) for r in await locker.fetch(
            f"SELECT * FROM {t} ORDER BY {k}")] for t, k in  # noqa: S608
            (("users", "id"), ("sessions", "id"), ("refresh_tokens", "id"),
             ("signing_keys", "kid"))}
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await locker.close()

    assert [a.code() if isinstance(a, grpc.RpcError) else a for a in answers] == [
        grpc.StatusCode.UNAVAILABLE] * len(calls)
    assert during == before
    await _assert_linear_chains(database_url)
    retried = [await _eventually(lambda s=s: refresh(stub, s.refresh_token)) for s in signed_in]
    assert [r.session_id for r in retried] == [s.session_id for s in signed_in]
    await _assert_linear_chains(database_url)


async def _wait_for_waiters(admin: asyncpg.Connection, database: str, count: int) -> None:
    """Until ``count`` backends of ``database`` wait for a lock (at most 10 s)."""
    waiting = 0

    async def reached() -> bool:
        nonlocal waiting
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            " AND wait_event_type = 'Lock'", database)
        return bool(waiting >= count)

    await eventually(reached, 10, lambda: f"{count} calls to reach the lock (only {waiting})",
                     interval=0.01)


async def _eventually(call: Any, seconds: float = 10) -> Any:
    """The RPC's answer once the pool has reconnected (UNAVAILABLE is retried)."""
    answers: list[Any] = []

    async def answered() -> bool:
        try:
            answers.append(await call())
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False
        return True

    await eventually(answered, seconds, "the pool to reconnect", interval=0.1)
    return answers[0]

