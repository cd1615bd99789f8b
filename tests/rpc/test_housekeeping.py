"""Housekeeping against the real database: every statement runs, old rows go,
rows that still matter stay, and a failing task names itself and its SQLSTATE."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from authsvc.runtime.app import running_app

DAY = 86_400


@pytest.fixture
async def keeper(settings, database_url, clock):
    """An app whose housekeeping the test drives by hand (no background loop)."""
    kept = dataclasses.replace(settings, audit_retention=90 * DAY)
    async with running_app(kept, database_url, clock, listen_for_revocations=False) as app:
        yield app


async def count(app, sql: str) -> int:
    async with app.db.connection() as conn:
        return int(await conn.fetchval(sql))


async def test_pruning_deletes_old_audit_rows_stale_throttles_and_expired_trust(keeper):
    """Audit events past the retention, throttle rows past their window and block,
    and trusted pairs past their time are deleted; everything younger stays. Ages are
    the database's: the rows are written relative to its now()."""
    async with keeper.db.connection() as conn:
        await conn.execute(
            "INSERT INTO auth_events (at, kind) SELECT now() - make_interval("
            "days => d) + interval '1 minute', 'signin.failure'"
            " FROM generate_series(0, 99, 3) AS d")
        await conn.execute(
            "INSERT INTO throttles (key, failures, last_failure_at, blocked_until) VALUES"
            " ('stale', 3, now() - interval '2 hours', NULL),"
            " ('blocked', 30, now() - interval '2 hours', now() + interval '5 minutes'),"
            " ('recent', 1, now() - interval '1 minute', NULL)")
        await conn.execute(
            "INSERT INTO trusted_clients (key, until) VALUES"
            " ('gone', now() - interval '1 second'), ('kept', now() + interval '1 day')")
    audited = await count(keeper, "SELECT count(*) FROM auth_events")

    pruned = await keeper.retention.prune()

    # Rows 93, 96 and 99 days old go; the one a minute short of 90 days stays.
    assert pruned == {"sessions": 0, "auth_events": 3, "throttles": 2, "challenges": 0}
    assert await count(keeper, "SELECT count(*) FROM auth_events") == audited - 3
    async with keeper.db.connection() as conn:
        assert {r["key"] for r in await conn.fetch("SELECT key FROM throttles")} == {
            "blocked", "recent"}
        assert [r["key"] for r in await conn.fetch("SELECT key FROM trusted_clients")] == [
            "kept"]


async def test_a_retention_of_zero_keeps_every_audit_row(settings, database_url, clock):
    """AUTHSVC_AUDIT_RETENTION=0 keeps the audit log whole."""
    forever = dataclasses.replace(settings, audit_retention=0)
    async with running_app(forever, database_url, clock, listen_for_revocations=False) as app:
        async with app.db.connection() as conn:
            await conn.execute("INSERT INTO auth_events (at, kind)"
                               " VALUES (to_timestamp(0), 'user.created')")
        before = await count(app, "SELECT count(*) FROM auth_events")

        pruned = await app.retention.prune()

        assert pruned["auth_events"] == 0
        assert await count(app, "SELECT count(*) FROM auth_events") == before


async def test_a_failing_task_is_logged_with_its_name_and_sqlstate(keeper, caplog):
    """A housekeeping task that fails names itself and the SQLSTATE, not only a type,
    and the next task still runs."""
    caplog.set_level(logging.WARNING, logger="authsvc.runtime.app")
    async with keeper.db.connection() as conn:
        await conn.execute("ALTER TABLE auth_events RENAME TO auth_events_gone")
    ran = []

    async def after() -> None:
        ran.append(True)

    await keeper._housekeeping_task("pruning", keeper.retention.prune)
    await keeper._housekeeping_task("keys", after)

    (record,) = [r for r in caplog.records if r.name == "authsvc.runtime.app"]
    assert record.fields == {"task": "pruning", "error": "UndefinedTableError",
                             "sqlstate": "42P01"}
    assert ran == [True]
