"""Migrations, and the database failing under the service."""

from __future__ import annotations

import asyncpg
import grpc

from authsvc.store.database import migrate, migrations
from authsvc.v1 import auth_pb2

from ..conftest import with_database
from ..helpers import database_refusing_connections, fails, sign_in


async def test_migrations_apply_to_an_empty_database_and_twice_is_a_no_op(pg_admin_url):
    """Every migration applies once, is recorded, and a second run changes nothing."""
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute('DROP DATABASE IF EXISTS "authsvc_migrate_test" WITH (FORCE)')
    await admin.execute('CREATE DATABASE "authsvc_migrate_test"')
    conn = await asyncpg.connect(with_database(pg_admin_url, "authsvc_migrate_test"))
    try:
        first = await migrate(conn)
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        second = await migrate(conn)
        recorded = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
        await admin.execute('DROP DATABASE "authsvc_migrate_test" WITH (FORCE)')
        await admin.close()

    assert first == [m.version for m in migrations()]
    assert second == []
    assert [r["version"] for r in recorded] == first
    assert {r["tablename"] for r in tables} >= {
        "users", "sessions", "refresh_tokens", "signing_keys", "auth_events",
        "schema_migrations"}


async def test_database_unreachable_is_unavailable(stub, app, user, pg_admin_url,
                                                   database_url):
    """With the database refusing connections, SignIn and Refresh answer UNAVAILABLE."""
    signed_in = await sign_in(stub)

    async with database_refusing_connections(pg_admin_url, database_url):
        signin = await fails(sign_in(stub))
        refresh = await fails(stub.Refresh(auth_pb2.RefreshRequest(
            refresh_token=signed_in.refresh_token)))

    assert signin.code == grpc.StatusCode.UNAVAILABLE
    assert refresh.code == grpc.StatusCode.UNAVAILABLE
    assert "SQL" not in signin.message and "asyncpg" not in signin.message
