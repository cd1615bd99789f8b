"""Storage grows with active sessions, not with history: refreshes add no rows, and
pruning deletes ended sessions once no token of theirs can pass, and nothing sooner."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import grpc
from prometheus_client import REGISTRY

from authsvc.core.revocations import retention_window
from authsvc.domain.retention import BATCH
from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import fails, sign_in, travel


@contextlib.asynccontextmanager
async def serving_stub(app) -> AsyncIterator[auth_pb2_grpc.AuthStub]:
    async with running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield auth_pb2_grpc.AuthStub(channel)


async def row_counts(app) -> dict[str, int]:
    """Rows of every table of the schema."""
    async with app.db.connection() as conn:
        tables = [r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        return {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"')  # noqa: S608
                for t in tables}


async def test_a_thousand_refreshes_add_rows_only_to_the_audit_log(stub, app, user):
    """1,000 refreshes of one session: still one session row, and no table but
    auth_events has a row more (no row per refresh token)."""
    token = (await sign_in(stub)).refresh_token
    before = await row_counts(app)

    for _ in range(1000):
        token = (await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))).refresh_token

    after = await row_counts(app)
    assert after["sessions"] == before["sessions"] == 1
    assert after["auth_events"] == before["auth_events"] + 1000
    assert {t: n for t, n in after.items() if t != "auth_events"} == \
        {t: n for t, n in before.items() if t != "auth_events"}


async def ended_sessions(app, stub) -> dict[str, str]:
    """Four sessions of one user: one revoked, one left idle, one past its absolute
    lifetime, one in use; name → session id."""
    revoked, idle, expired, active = [await sign_in(stub) for _ in range(4)]
    await stub.Revoke(auth_pb2.RevokeRequest(token=revoked.refresh_token))
    async with app.db.connection() as conn:
        await conn.execute("UPDATE sessions SET last_used_at = now() - make_interval("
                           "secs => $2) WHERE id = $1::text::uuid", idle.session_id,
                           float(app.settings.session_idle_ttl))
        await conn.execute("UPDATE sessions SET expires_at = now() WHERE id = $1::text::uuid",
                           expired.session_id)
    return {"revoked": revoked.session_id, "idle": idle.session_id,
            "expired": expired.session_id, "active": active.session_id}


async def surviving(app, sessions: dict[str, str]) -> list[str]:
    async with app.db.connection() as conn:
        ids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM sessions")}
    return sorted(name for name, sid in sessions.items() if sid in ids)


async def test_ended_sessions_go_once_no_token_of_theirs_can_pass(settings, database_url,
                                                                 clock):
    """Revoked and expired sessions stay until the revocation retention window
    (access-token lifetime + 3 x leeway) has passed since they ended, then go, in the
    pass that finds them; the session in use stays, and so does the idle one until its
    absolute lifetime is over; the pass is counted."""
    async with running_app(settings, database_url, clock,
                           listen_for_revocations=False) as app, serving_stub(app) as stub:
        await app.accounts.add("email", "alice@example.com", "correct horse battery staple")
        sessions = await ended_sessions(app, stub)
        window = retention_window(settings.access_token_ttl, settings.clock_leeway)
        counted = REGISTRY.get_sample_value("authsvc_pruned_rows_total",
                                            {"table": "sessions"}) or 0.0

        await travel(database_url, window - 5, clock)
        await app.retention.prune()
        within = await surviving(app, sessions)
        await travel(database_url, 10, clock)
        pruned = await app.retention.prune()

        assert within == ["active", "expired", "idle", "revoked"]
        assert await surviving(app, sessions) == ["active", "idle"]
        assert pruned["sessions"] == 2
        assert REGISTRY.get_sample_value("authsvc_pruned_rows_total",
                                         {"table": "sessions"}) == counted + 2


async def test_a_token_whose_session_was_pruned_is_refused(settings, database_url, clock):
    """Validate's database fallback (revocation feed too stale) finds no session row
    and answers TOKEN_REVOKED, never OK."""
    long_lived = dataclasses.replace(settings, revocation_max_staleness=0)
    async with running_app(long_lived, database_url, clock,
                           listen_for_revocations=False) as app, serving_stub(app) as stub:
        await app.accounts.add("email", "alice@example.com", "correct horse battery staple")
        signed_in = await sign_in(stub)
        async with app.db.connection() as conn:
            await conn.execute("DELETE FROM sessions WHERE id = $1::text::uuid",
                               signed_in.session_id)

        failure = await fails(stub.Validate(auth_pb2.ValidateRequest(
            access_token=signed_in.access_token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_pruning_drains_a_backlog_in_batches(settings, database_url, clock):
    """A backlog larger than a batch is deleted in several short statements in one pass."""
    async with running_app(settings, database_url, clock,
                           listen_for_revocations=False) as app:
        user_id = await app.accounts.add("email", "alice@example.com",
                                         "correct horse battery staple")
        async with app.db.connection() as conn:
            await conn.execute(
                "INSERT INTO sessions (id, user_id, scopes, expires_at, revoked_at)"
                " SELECT gen_random_uuid(), $1::text::uuid, '{}', now() - interval '60 days',"
                " now() - interval '60 days' FROM generate_series(1, 2500)", user_id)

        pruned = await app.retention.prune()

        assert pruned["sessions"] == 2500
        assert (await row_counts(app))["sessions"] == 0


async def test_successful_refreshes_need_not_be_audited(settings, database_url, clock):
    """AUTHSVC_AUDIT_REFRESHES=false: rotations add no row at all, while reuse is still
    audited (and revokes the session)."""
    quiet = dataclasses.replace(settings, audit_refreshes=False)
    async with running_app(quiet, database_url, clock) as app, serving_stub(app) as stub:
        await app.accounts.add("email", "alice@example.com", "correct horse battery staple")
        first = await sign_in(stub)
        token = first.refresh_token
        before = await row_counts(app)
        for _ in range(20):
            token = (await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))
                     ).refresh_token
        rotated = await row_counts(app)
        await travel(database_url, 11, clock)
        reused = await fails(stub.Refresh(auth_pb2.RefreshRequest(
            refresh_token=first.refresh_token)))
        async with app.db.connection() as conn:
            kinds = [r["kind"] for r in await conn.fetch(
                "SELECT kind FROM auth_events WHERE kind LIKE 'refresh.%'")]

    assert rotated == before
    assert reused.reason == "REFRESH_TOKEN_REUSED"
    assert kinds == ["refresh.reuse_detected"]


async def test_pruning_drains_a_throttle_backlog_in_one_pass(settings, database_url, clock):
    """Stale throttle counters and expired trusted pairs beyond one batch are all
    deleted in one pass (several short statements), like sessions and audit rows;
    fresh counters stay."""
    stale = 2 * BATCH + 500
    async with running_app(settings, database_url, clock,
                           listen_for_revocations=False) as app:
        async with app.db.connection() as conn:
            await conn.execute(
                "INSERT INTO throttles (key, failures, last_failure_at)"
                " SELECT 'stale-' || n, 3, now() - interval '30 days'"
                " FROM generate_series(1, $1::int) AS n", stale)
            await conn.execute(
                "INSERT INTO throttles (key, failures, last_failure_at)"
                " SELECT 'fresh-' || n, 3, now() FROM generate_series(1, 10) AS n")
            await conn.execute(
                "INSERT INTO trusted_clients (key, until)"
                " SELECT 'expired-' || n, now() - interval '1 day'"
                " FROM generate_series(1, $1::int) AS n", BATCH + 1)

        pruned = await app.retention.prune()

        counts = await row_counts(app)
    assert pruned["throttles"] == stale + BATCH + 1
    assert (counts["throttles"], counts["trusted_clients"]) == (10, 0)
