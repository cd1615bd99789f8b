"""What a process does once before it serves or runs a command: check its clock
against the database's, migrate, make sure a signing key exists."""

from __future__ import annotations

import logging

from ..clock import Clock, system_clock
from ..config import Settings
from ..domain.keystore import KeyStore
from ..errors import ConfigError
from ..store.database import (
    Connection,
    Database,
    clock_beyond,
    clock_offset,
    connect,
    create_pool,
    explained_connect_failures,
    migrate,
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


async def check_and_migrate(settings: Settings, url: str) -> None:
    """``prepare`` but the signing key, which a worker's app makes sure of itself."""
    conn = await connect(url, settings.db_timeout)
    try:
        await check_clock(conn, settings.clock_leeway)
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
