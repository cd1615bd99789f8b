"""What a process does once before it serves or runs a command: check its clock
against the database's, migrate, make sure a signing key exists; and, before
serving, whether the database has room for this replica's connections."""

from __future__ import annotations

import logging

from ..clock import Clock, system_clock
from ..config import Settings
from ..domain.tokens.keystore import KeyStore
from ..errors import ConfigError
from ..store.database import (
    Connection,
    ConnectionBudget,
    Database,
    clock_beyond,
    clock_offset,
    connect,
    create_pool,
    explained_connect_failures,
    migrate,
    server_connections,
)

log = logging.getLogger("authsvc")


async def prepare(settings: Settings, url: str) -> None:
    """Check this host's clock against the database's, migrate and make sure a signing
    key exists (safe on several replicas)."""
    await check_and_migrate(settings, url)
    pool = await create_pool(url, 2, settings.db_timeout)
    try:
        await KeyStore(Database(pool, settings.db_timeout), settings,
                       system_clock).ensure_signing_key()
    finally:
        await pool.close()


async def check_and_migrate(settings: Settings, url: str, *,
                            check_budget: bool = False) -> None:
    """``prepare`` but the signing key, which a worker's app makes sure of itself;
    ``check_budget``: and warn if the database looks too small for this replica
    (``check_connection_budget``; one worker of a replica asks)."""
    budget = ConnectionBudget(settings.workers, settings.db_pool_size)
    conn = await connect(url, settings.db_timeout, budget=budget)
    try:
        await check_clock(conn, settings.clock_leeway)
        if check_budget:
            await check_connection_budget(conn, budget)
        with explained_connect_failures(url):  # e.g. a URL that reaches a standby
            await migrate(conn)
    finally:
        await conn.close()


async def check_clock(conn: Connection, leeway: float, clock: Clock = system_clock) -> None:
    """Refuse to start on a host whose clock is more than the leeway off the database's.

    Tokens are judged by replicas' clocks within the leeway, and a revoked session is
    remembered on the assumption that every replica is within it
    (``core.revocations.retention_window``): a replica further off would issue tokens
    others refuse, or accept a revoked session's token after its revocation is
    forgotten. Running workers keep measuring (``authsvc_clock_offset_seconds``)."""
    offset = await clock_offset(conn, clock)
    if clock_beyond(offset, leeway):
        raise ConfigError(
            f"this host's clock is {offset:+.1f} s off the database's, more than "
            f"AUTHSVC_CLOCK_LEEWAY ({leeway:g} s): fix its time synchronisation (NTP)")
    log.info("clock checked", extra={"fields": {"clock_offset_s": round(offset, 3)}})


async def check_connection_budget(conn: Connection, budget: ConnectionBudget) -> bool:
    """Warn (one log line) when PostgreSQL cannot hold what this replica may open:
    ``budget.per_replica`` connections, when every pool is full. A replica does
    not know how many others there are, so it judges what it sees: more than the
    slots an ordinary role may use at all (``max_connections`` minus the reserved
    ones), or more than are free now (connections of other replicas, and of
    anything else, are in use; this check's own connection closes before the
    pool opens, so it does not count). Over budget the service still runs, but
    calls may be UNAVAILABLE when the pools need the connections; whether the
    warning was given."""
    server = await server_connections(conn)
    fields = {"connections_needed": budget.per_replica,
              "max_connections": server.max_connections,
              "superuser_reserved_connections": server.superuser_reserved,
              "reserved_connections": server.reserved,
              "connections_in_use": server.in_use - 1}
    if budget.per_replica > server.available:
        log.warning(
            "connection budget: this replica alone may need more connections than "
            "PostgreSQL allows (%d > max_connections %d - reserved %d): %s",
            budget.per_replica, server.max_connections,
            server.superuser_reserved + server.reserved, budget.arithmetic(),
            extra={"fields": fields})
        return True
    if budget.per_replica > server.free + 1:
        log.warning(
            "connection budget: PostgreSQL has %d connection slots free and this replica "
            "may need %d: %s", server.free + 1, budget.per_replica, budget.arithmetic(),
            extra={"fields": fields})
        return True
    return False
