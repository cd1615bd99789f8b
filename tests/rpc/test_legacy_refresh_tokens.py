"""An upgrade to counter-based refresh tokens (migration 0004) logs nobody out: refresh
tokens issued before it keep working, with the same grace and reuse rules, until their
sessions end, and the old table is only ever read."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from authsvc.core.revocations import retention_window
from authsvc.domain.sessions.refresh_tokens import RefreshTokens
from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.store.database import migrate, migrations
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..conftest import with_database
from ..helpers import fails, travel

BEFORE_COUNTERS = 3


@pytest.fixture
async def upgraded(pg_admin_url: str, settings) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A database at migration 0003 with one session of alice as the old code left it
    (a spent root token, its unspent successor, a new token of a second session), then
    upgraded; its URL and the legacy tokens by name."""
    name = f"authsvc_legacy_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(pg_admin_url, name)
    kek = settings.key_encryption_key.reveal()
    tokens = {"spent": secrets.token_urlsafe(32), "other": secrets.token_urlsafe(32)}
    tokens["current"] = RefreshTokens(kek).legacy_successor(tokens["spent"])
    conn = await asyncpg.connect(url)
    try:
        for migration in migrations():
            if migration.version <= BEFORE_COUNTERS:
                await conn.execute(migration.sql)
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
                           " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        await conn.executemany("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                               [(m.version, m.name) for m in migrations()
                                if m.version <= BEFORE_COUNTERS])
        user = await conn.fetchval(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
            " VALUES (gen_random_uuid(), 'alice@example.com', 'x', now(), now()) RETURNING id")
        for chain in (("spent", "current"), ("other",)):
            session = await conn.fetchval(
                "INSERT INTO sessions (id, user_id, scopes, created_at, expires_at,"
                " last_used_at) VALUES (gen_random_uuid(), $1, '{}', now(),"
                " now() + interval '7 days', now()) RETURNING id", user)
            parent = None
            for position, token in enumerate(chain):
                spent = position < len(chain) - 1
                parent = await conn.fetchval(
                    "INSERT INTO refresh_tokens (session_id, token_hash, parent_id, created_at,"
                    " spent_at) VALUES ($1, $2, $3, now(), CASE WHEN $4 THEN now() END)"
                    " RETURNING id", session, hashlib.sha256(tokens[token].encode()).digest(),
                    parent, spent)
        await migrate(conn)
        yield url, tokens
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def legacy_stub(upgraded, settings, clock) -> AsyncIterator[auth_pb2_grpc.AuthStub]:
    url, _tokens = upgraded
    async with running_app(settings, url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield auth_pb2_grpc.AuthStub(channel)


def refresh(stub, token):
    return stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))


async def legacy_rows(url: str) -> list[tuple]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch("SELECT * FROM refresh_tokens ORDER BY id")]
    finally:
        await conn.close()


async def test_a_legacy_token_rotates_into_a_counter_token(legacy_stub, upgraded):
    """The current legacy token refreshes once into a counter token, which refreshes
    on; presented again within the grace it gets that same counter token; the old
    table is never written."""
    url, tokens = upgraded
    rows = await legacy_rows(url)

    first = await refresh(legacy_stub, tokens["current"])
    again = await refresh(legacy_stub, tokens["current"])
    onwards = await refresh(legacy_stub, first.refresh_token)

    assert again.refresh_token == first.refresh_token != tokens["current"]
    assert len(first.refresh_token) == 76
    assert onwards.session_id == first.session_id
    assert await legacy_rows(url) == rows


async def test_a_legacy_token_spent_before_the_upgrade_keeps_its_grace(legacy_stub, upgraded,
                                                                       clock):
    """A legacy token spent just before the upgrade, presented again within the grace,
    gets the successor it got then; after the grace it is reuse and ends the session."""
    url, tokens = upgraded

    retried = await refresh(legacy_stub, tokens["spent"])
    await travel(url, 11, clock)
    late = await fails(refresh(legacy_stub, tokens["spent"]))
    after = await fails(refresh(legacy_stub, tokens["current"]))

    assert retried.refresh_token == tokens["current"]
    assert (late.code, late.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    assert after.reason == "REFRESH_TOKEN_INVALID"


async def test_a_legacy_token_presented_after_rotation_and_grace_is_reuse(legacy_stub,
                                                                          upgraded, clock):
    """Once a legacy token has been rotated and the grace has passed, presenting it
    again is reuse: the session is revoked, its counter tokens too."""
    url, tokens = upgraded
    rotated = await refresh(legacy_stub, tokens["other"])
    await travel(url, 11, clock)

    reused = await fails(refresh(legacy_stub, tokens["other"]))
    successor = await fails(refresh(legacy_stub, rotated.refresh_token))

    assert reused.reason == "REFRESH_TOKEN_REUSED"
    assert successor.reason == "REFRESH_TOKEN_INVALID"


async def test_revoke_by_legacy_refresh_token_ends_its_session(legacy_stub, upgraded):
    """RFC 7009 Revoke with a legacy refresh token revokes its session."""
    _url, tokens = upgraded
    await legacy_stub.Revoke(auth_pb2.RevokeRequest(token=tokens["current"]))

    failure = await fails(refresh(legacy_stub, tokens["current"]))

    assert failure.reason == "REFRESH_TOKEN_INVALID"



async def test_legacy_rows_go_with_their_pruned_session(legacy_stub, upgraded, settings,
                                                        clock):
    """Pruning a revoked session (past the revocation window) takes its legacy
    refresh-token rows with it: the old table empties as sessions end."""
    url, tokens = upgraded
    await legacy_stub.Revoke(auth_pb2.RevokeRequest(token=tokens["other"]))
    window = retention_window(settings.access_token_ttl, settings.clock_leeway)
    await travel(url, window + 1, clock)

    async with running_app(settings, url, clock, listen_for_revocations=False) as app:
        pruned = await app.retention.prune()

    assert pruned["sessions"] == 1
    assert len(await legacy_rows(url)) == 2  # the live session's two rows stay
