"""Connections, transactions, migrations, and the one place that turns
database failures into domain errors.

Migrations are the numbered ``migrations/NNNN_name.sql`` files shipped in the
package, applied in order, each in its own transaction and recorded in
``schema_migrations``, all under a PostgreSQL advisory lock so several
replicas starting at once apply each file exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from ..clock import call_deadline
from ..errors import ConfigError, DatabaseUnreachable, Unavailable
from . import hosts

log = logging.getLogger(__name__)

# Arbitrary, fixed: pg_advisory_lock key for "authsvc schema changes".
MIGRATION_LOCK_ID = 0x61757468_73766331  # "authsvc1"
REVOCATION_CHANNEL = "authsvc_revocations"

# What the domain holds while it runs store functions in one transaction.
Connection = asyncpg.Connection

# A standby (or a primary demoted by a failover) refuses writes: the connection
# went to the wrong server, and a new one may reach the primary.
WRONG_SERVER: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ReadOnlySQLTransactionError,   # 25006
)

# SQLSTATE classes that mean "the database is not there right now".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,          # class 08
    asyncpg.exceptions.OperatorInterventionError,   # class 57: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    asyncpg.InterfaceError,                   # connection closed under us, pool closing
    # The server dropped the connection between two reads: asyncpg has taken in
    # the server's farewell error but not yet the end of file, so its protocol
    # state is out of step ("cannot switch to state …"), and the pool can lend
    # the connection out in that moment. A dead connection, not a bug of ours.
    asyncpg.exceptions.InternalClientError,
    *WRONG_SERVER,
    # Class 40: a deadlock or serialization failure rolled the transaction back;
    # nothing was changed and the same call may simply be tried again.
    asyncpg.exceptions.TransactionRollbackError,
)


@contextlib.contextmanager
def unavailable_on_failure() -> Iterator[None]:
    """Turn connection-level failures into ``Unavailable``; the cause goes to the log."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        log.warning("database unavailable: %s", type(exc).__name__)
        raise Unavailable("database unavailable") from exc


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migrations shipped in the package, in order."""
    found = []
    for entry in resources.files("authsvc.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name)
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied


def location(url: str) -> str:
    """Where a PostgreSQL URL points, for messages: host(s) and port(s) or the
    socket directory, and the database; never the user's password."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    hosts = parts.netloc.rpartition("@")[2] or ",".join(query.get("host", [])) or "localhost"
    if "," not in hosts and ":" not in hosts.rsplit("]", 1)[-1] and not hosts.startswith("/"):
        hosts += ":5432"
    return f"{hosts}, database {parts.path.lstrip('/') or parts.username or 'postgres'}"


@contextlib.contextmanager
def explained_connect_failures(url: str) -> Iterator[None]:
    """Mistakes in the database URL or the server's answer to it, as one line naming
    the variable, where it points (never the password) and what to do: ConfigError
    when the URL is wrong (exit 2), DatabaseUnreachable when nothing answers (exit 3)."""
    where = location(url)
    try:
        yield
    except asyncpg.ClientConfigurationError:
        raise ConfigError("AUTHSVC_DATABASE_URL is not a PostgreSQL URL: use postgresql://"
                          "USER:PASSWORD@HOST:PORT/DATABASE") from None
    except asyncpg.InvalidAuthorizationSpecificationError:
        raise ConfigError(f"AUTHSVC_DATABASE_URL: PostgreSQL at {where} refused the user "
                          "and password in the URL; check both") from None
    except asyncpg.InvalidCatalogNameError:
        raise ConfigError(f"AUTHSVC_DATABASE_URL: PostgreSQL at {where}: no such database; "
                          "create it (createdb) or fix the URL's path") from None
    except WRONG_SERVER as exc:
        raise DatabaseUnreachable(f"AUTHSVC_DATABASE_URL: PostgreSQL at {where} is read-only "
                                  "(a standby?); point the URL at the primary, or name every "
                                  "host with ?target_session_attrs=read-write") from exc
    except CONNECTION_ERRORS as exc:
        why = ("its host name does not resolve" if isinstance(exc, socket.gaierror)
               else "nothing answers there" if isinstance(exc, (OSError, TimeoutError))
               else "it refuses connections now")
        raise DatabaseUnreachable(f"AUTHSVC_DATABASE_URL: cannot reach PostgreSQL at {where}: "
                                  f"{why}; check the host and port, and that it runs"
                                  ) from exc


async def connect(url: str, timeout: float, application_name: str = "authsvc",
                  ) -> asyncpg.Connection:
    """One connection; with several hosts in the URL, each gets ``timeout`` to
    itself (``hosts.connect``), so a hanging host cannot hide a promoted standby."""
    with explained_connect_failures(url):
        return await hosts.connect(url, timeout=timeout, command_timeout=timeout,
                                   server_settings={"application_name": application_name})


async def create_pool(url: str, size: int, timeout: float, *,
                      init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
                      ) -> asyncpg.Pool:
    """The worker's pool; it opens every connection the way ``connect`` does. A
    connection handed back needs no reset query: pooled connections never LISTEN
    (the listener has its own), never change session settings and hold no
    session-level locks, and an open transaction is rolled back by ``Database`` or
    the connection closed; so a release costs no round trip. ``init`` runs on each
    new connection (e.g. to attach asyncpg query loggers)."""
    with explained_connect_failures(url):
        pool = await asyncpg.create_pool(
            url, connect=hosts.connect,
            min_size=1, max_size=size, timeout=timeout, command_timeout=timeout,
            max_inactive_connection_lifetime=60, init=init, reset=_nothing_to_reset,
            server_settings={"application_name": "authsvc"})
    assert pool is not None
    return pool


async def _nothing_to_reset(_conn: asyncpg.Connection) -> None:
    """See ``create_pool``: a released pooled connection is already clean."""


class Database:
    """The asyncpg pool, lent out one connection or one transaction at a time."""

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self.pool = pool
        self._timeout = timeout

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._lend(transaction=False) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._lend(transaction=True) as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _lend(self, *, transaction: bool) -> AsyncIterator[asyncpg.Connection]:
        """A connection (in a transaction) under one deadline for everything: waiting
        for the pool, every statement, and handing it back. The deadline is
        ``AUTHSVC_DB_TIMEOUT`` from now, or the calling RPC's own deadline when that
        is sooner (``clock.call_deadline``), so a frozen database is UNAVAILABLE in
        time for the client to hear it. A connection that ran out of time is closed,
        never handed back (its state is unknown, and resetting it would wait again)."""
        loop = asyncio.get_running_loop()
        ours = loop.time() + self._timeout
        deadline = min(ours, call_deadline.get() or math.inf)
        conn: asyncpg.Connection | None = None
        settled = False  # the connection is idle and in a known state
        try:
            async with asyncio.timeout_at(deadline):
                conn = await self._acquire()
                with self._unavailable_on_failure(conn):
                    if not transaction:
                        try:
                            yield conn
                        except asyncio.CancelledError:
                            raise
                        except BaseException:
                            settled = True  # the caller's own error: no statement runs
                            raise
                    else:
                        # By hand, not conn.transaction(): after a cancellation (the
                        # deadline, or the client going away) its ROLLBACK would first
                        # wait for the server to acknowledge the cancel.
                        await conn.execute("BEGIN")
                        try:
                            yield conn
                        except asyncio.CancelledError:
                            raise
                        except BaseException:
                            await conn.execute("ROLLBACK")
                            settled = True
                            raise
                        await conn.execute("COMMIT")
                settled = True
        except TimeoutError as exc:
            log.warning("database did not answer within the call's deadline")
            if conn is not None and deadline == ours:
                # A server that stopped answering for all of AUTHSVC_DB_TIMEOUT
                # (frozen, cut off, failed over) would cost one more call its
                # deadline per pooled connection: replace them all on their next
                # use instead. (A client's own shorter deadline proves nothing.)
                await self.pool.expire_connections()
            raise Unavailable("database did not answer in time") from exc
        except Unavailable as exc:
            await self._after_wrong_server(exc)
            raise
        finally:
            if conn is not None:
                if settled:
                    await self._release(conn, max(0.0, deadline - loop.time()))
                else:  # cancelled mid-statement: its state is unknown, close it
                    _terminate(conn)

    async def _after_wrong_server(self, exc: Unavailable) -> None:
        """A read-only server means a failover happened (or the URL names a standby):
        every pooled connection is replaced on its next use, not only this one."""
        if isinstance(exc.__cause__, WRONG_SERVER):
            await self.pool.expire_connections()

    @contextlib.contextmanager
    def _unavailable_on_failure(self, conn: asyncpg.Connection) -> Iterator[None]:
        """``unavailable_on_failure``, and a connection whose protocol is out of step,
        or that reached a read-only server, is closed rather than returned to the
        pool, so no other call gets it and the next one connects afresh (with
        ``target_session_attrs=read-write``, to the primary)."""
        try:
            with unavailable_on_failure():
                yield
        except Unavailable as exc:
            if isinstance(exc.__cause__, (asyncpg.exceptions.InternalClientError,
                                          *WRONG_SERVER)):
                _terminate(conn)
            raise

    async def _acquire(self) -> asyncpg.Connection:
        """A pooled connection. Any failure to get one, including the server
        refusing new connections, means the database is unavailable."""
        try:
            return await self.pool.acquire(timeout=self._timeout)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            raise Unavailable("database unavailable") from exc

    async def _release(self, conn: asyncpg.Connection, within: float) -> None:
        """Hand ``conn`` back, or close it if that cannot be done ``within`` seconds."""
        try:
            await self.pool.release(conn, timeout=max(within, 0.001))
        except Exception:
            _terminate(conn)  # the pool may have closed it already

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pool.close(), self._timeout)


def _terminate(conn: asyncpg.Connection) -> None:
    """Close a pooled connection now (it goes back to the pool, which reconnects);
    nothing to do if the pool has already taken it back."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


def as_rows(records: list[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


async def clock_offset(conn: asyncpg.Connection, clock: Callable[[], float],
                       timeout: float | None = None) -> float:
    """How far ``clock`` is off the database's clock (ours minus theirs), read at the
    middle of one round trip. Token times are whole seconds, so an offset matters
    only beyond ``CLOCK_RESOLUTION`` more than the leeway (see ``clock_beyond``)."""
    sent = clock()
    theirs = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8",
                                 timeout=timeout)
    return float((sent + clock()) / 2 - theirs)


CLOCK_RESOLUTION = 1.0  # JWT times are whole seconds


def clock_beyond(offset: float, leeway: float) -> bool:
    """Whether a clock ``offset`` seconds off the database's is beyond the leeway:
    more than ``leeway`` plus the one second token times are rounded to."""
    return abs(offset) > leeway + CLOCK_RESOLUTION
