"""What an idle ``serve --workers 2`` costs its database: at most one transaction per
worker per second, counted by PostgreSQL (``pg_stat_database``), over one housekeeping
pass with the default intervals, with mail (SMTP) and the webhook configured, so
both of the outbox's receivers have a loop in each worker.

A count, not a timing: the window is idle time the test waits through on purpose,
because the rate over it is the behaviour under test. PostgreSQL publishes a
backend's counts when it has been idle a while or when it exits, so a count is
exact only around the whole life of the server's connections: each server is
counted from before it starts to after it stopped, and the start-up and shutdown
transactions (one server stopped as soon as it is ready) are subtracted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from ..conftest import with_database
from ..receivers import Mailbox, WebhookReceiver
from ..servers import AuthsvcProcess, free_port, new_key, server_env

WORKERS = 2
HOUSEKEEPING_INTERVAL = 30.0  # the default: the window holds one pass of each worker
WINDOW = HOUSEKEEPING_INTERVAL + 2.0
PER_WORKER_SECOND = 1.0
KEY = new_key()


@pytest.fixture
def idle_database_url(pg_admin_url: str, template_name: str) -> Iterator[str]:
    """A migrated database of this test's own: nothing else counts in its statistics."""
    name = f"authsvc_idle_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    yield with_database(pg_admin_url, name)
    asyncio.run(_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _ended(url: str) -> int:
    """Transactions committed or rolled back in the database so far (the reading is one
    more, counted by the next reading)."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"))
    finally:
        await conn.close()


def _transactions_of_one_life(url: str, idle: float, mailbox: Mailbox,
                              receiver: WebhookReceiver) -> int:
    """Transactions of one ``serve --workers 2``, from start to stop, idle ``idle``
    seconds once it is ready."""
    env = server_env(AUTHSVC_DATABASE_URL=url, AUTHSVC_KEY_ENCRYPTION_KEY=KEY,
                     AUTHSVC_HOUSEKEEPING_INTERVAL=str(HOUSEKEEPING_INTERVAL),
                     AUTHSVC_SMTP_URL=mailbox.url, AUTHSVC_SMTP_FROM="authsvc@example.com",
                     AUTHSVC_WEBHOOK_URL=receiver.url, AUTHSVC_WEBHOOK_SECRET=receiver.secret)
    before = asyncio.run(_ended(url))
    server = AuthsvcProcess(free_port(), env, ["--workers", str(WORKERS)]).start()
    try:
        server.wait_ready()
        time.sleep(idle)  # the counted window (see the module's docstring)
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0, server.log
    return asyncio.run(_ended(url)) - before - 1


def test_an_idle_server_costs_at_most_one_transaction_per_worker_per_second(
        idle_database_url, mailbox, receiver):
    start_and_stop = _transactions_of_one_life(idle_database_url, 0.0, mailbox, receiver)
    started = time.monotonic()
    whole = _transactions_of_one_life(idle_database_url, WINDOW, mailbox, receiver)
    # The idle window's share; its length is at least WINDOW (the life was longer).
    idle = whole - start_and_stop
    assert time.monotonic() - started >= WINDOW
    assert 0 < idle <= PER_WORKER_SECOND * WORKERS * WINDOW, (
        f"{idle} transactions in {WINDOW:.0f} s idle with {WORKERS} workers "
        f"(start-up and shutdown: {start_and_stop})")
