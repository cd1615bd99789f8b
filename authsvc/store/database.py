"""Connections, transactions, migrations, and the one place that turns
database failures into domain errors.

Each worker holds at most ``AUTHSVC_DB_POOL_SIZE + 1`` connections: its pool's,
and one more its revocation listener takes out of that pool and keeps
(``store.listener``). A fleet needs replicas x workers x (pool size + 1)
connections within ``max_connections`` minus the reserved slots
(``ConnectionBudget``). When PostgreSQL refuses a connection for lack of slots
(SQLSTATE class 53), the pool stops asking for a while (``RefusalBackoff``)
rather than once per call.

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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from ..clock import call_deadline
from ..core.backoff import Backoff
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


# PostgreSQL answered a connection attempt with "not now, no room": class 53
# (53300 too many connections, out of memory). Each attempt costs the server a
# process, so asking again at once only makes it worse: see RefusalBackoff.
REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InsufficientResourcesError,
)


class ConnectionsRefused(ConnectionError):
    """PostgreSQL refused this pool's last connection attempt (its cause, SQLSTATE
    class 53); no new attempt is made before the backoff after it has passed."""


_REFUSED: tuple[type[BaseException], ...] = (*REFUSALS, ConnectionsRefused)


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


@dataclass(frozen=True, slots=True)
class ConnectionBudget:
    """What one replica may hold: ``workers`` x (``pool`` + 1 for the revocation
    listener) connections. Every replica's must fit, together, in the server's
    ``max_connections`` minus ``superuser_reserved_connections`` and
    ``reserved_connections`` (slots an ordinary role cannot use)."""

    workers: int
    pool: int

    @property
    def per_worker(self) -> int:
        return self.pool + 1

    @property
    def per_replica(self) -> int:
        return self.workers * self.per_worker

    def arithmetic(self) -> str:
        return (f"each replica holds up to AUTHSVC_WORKERS x (AUTHSVC_DB_POOL_SIZE + 1 for "
                f"the revocation listener) = {self.workers} x ({self.pool} + 1) = "
                f"{self.per_replica} connections, and every replica's must fit in "
                "max_connections minus superuser_reserved_connections and "
                "reserved_connections")


@dataclass(frozen=True, slots=True)
class ServerConnections:
    """The server's connection limits, and how many connections it has now."""

    max_connections: int
    superuser_reserved: int
    reserved: int
    in_use: int

    @property
    def available(self) -> int:
        """Slots an ordinary role may use at all."""
        return self.max_connections - self.superuser_reserved - self.reserved

    @property
    def free(self) -> int:
        return self.available - self.in_use


async def server_connections(conn: asyncpg.Connection) -> ServerConnections:
    """``ServerConnections`` as the server reports them (client backends in use,
    this one included)."""
    row = await conn.fetchrow(
        "SELECT current_setting('max_connections')::int AS max_connections,"
        " current_setting('superuser_reserved_connections')::int AS superuser_reserved,"
        " coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,"
        " (SELECT count(*) FROM pg_stat_activity"
        "  WHERE backend_type = 'client backend')::int AS in_use")
    return ServerConnections(**dict(row))


@contextlib.contextmanager
def explained_connect_failures(url: str, budget: ConnectionBudget | None = None,
                               ) -> Iterator[None]:
    """Mistakes in the database URL or the server's answer to it, as one line naming
    the variable, where it points (never the password) and what to do: ConfigError
    when the URL is wrong (exit 2), DatabaseUnreachable when nothing answers or the
    server has no connection to spare (exit 3: it may have one soon); ``budget``
    puts this replica's numbers in the latter's arithmetic."""
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
    except _REFUSED as exc:
        raise DatabaseUnreachable(_refusal_message(where, exc, budget)) from exc
    except CONNECTION_ERRORS as exc:
        why = ("its host name does not resolve" if isinstance(exc, socket.gaierror)
               else "nothing answers there" if isinstance(exc, (OSError, TimeoutError))
               else "it refuses connections now")
        raise DatabaseUnreachable(f"AUTHSVC_DATABASE_URL: cannot reach PostgreSQL at {where}: "
                                  f"{why}; check the host and port, and that it runs"
                                  ) from exc


def _refusal_message(where: str, exc: BaseException, budget: ConnectionBudget | None) -> str:
    refusal = exc.__cause__ if isinstance(exc, ConnectionsRefused) else exc
    sqlstate = getattr(refusal, "sqlstate", None) or "53000"
    if not isinstance(refusal, asyncpg.exceptions.TooManyConnectionsError):
        return (f"AUTHSVC_DATABASE_URL: PostgreSQL at {where} is out of resources and "
                f"refuses connections (SQLSTATE {sqlstate}); see its log")
    arithmetic = (budget.arithmetic() if budget is not None else
                  "each replica holds up to AUTHSVC_WORKERS x (AUTHSVC_DB_POOL_SIZE + 1 for "
                  "the revocation listener) connections, and every replica's must fit in "
                  "max_connections minus superuser_reserved_connections and "
                  "reserved_connections")
    return (f"AUTHSVC_DATABASE_URL: PostgreSQL at {where} has no connection slot left "
            f"(too many connections, SQLSTATE {sqlstate}): {arithmetic}; raise "
            "max_connections, or lower AUTHSVC_DB_POOL_SIZE or AUTHSVC_WORKERS, or run "
            "fewer replicas")


async def connect(url: str, timeout: float, application_name: str = "authsvc",
                  budget: ConnectionBudget | None = None) -> asyncpg.Connection:
    """One connection; with several hosts in the URL, each gets ``timeout`` to
    itself (``hosts.connect``), so a hanging host cannot hide a promoted standby."""
    with explained_connect_failures(url, budget):
        return await hosts.connect(url, timeout=timeout, command_timeout=timeout,
                                   server_settings={"application_name": application_name})


class RefusalBackoff:
    """A pool's connection factory (``hosts.connect``) that stops asking once
    PostgreSQL has refused a connection for lack of room (``REFUSALS``): until
    ``core.backoff``'s wait after that refusal is over (0.1 s doubling to 5 s,
    jittered) every attempt fails at once with ``ConnectionsRefused`` (the call
    answers UNAVAILABLE), and then one attempt at a time asks again; the first
    that connects ends it. Without it a pool asks once per call that finds no
    idle connection: hundreds of attempts a second, each a process forked by
    the server, against a server that is already full. Other failures (nothing
    answers, a failover) are not held back: the next call tries again at once,
    as a failover wants. ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 backoff: Backoff | None = None) -> None:
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._refusal: BaseException | None = None  # the last, while refused
        self._not_before = 0.0
        self._asking = False  # an attempt after a refusal is under way
        self.refused_attempts = 0  # attempts PostgreSQL refused (for tests and logs)

    async def connect(self, dsn: str, **kwargs: Any) -> asyncpg.Connection:
        if self._refusal is not None:
            if self._asking or self._clock() < self._not_before:
                raise ConnectionsRefused(
                    "PostgreSQL refused the last connection attempt; not asking again yet"
                ) from self._refusal
            self._asking = True
        try:
            conn = await hosts.connect(dsn, **kwargs)
        except REFUSALS as exc:
            if self._refusal is None:
                log.warning("PostgreSQL refuses connections (SQLSTATE %s); asking less "
                            "often until it accepts one", getattr(exc, "sqlstate", None))
            self.refused_attempts += 1
            self._refusal = exc
            self._not_before = self._clock() + self._backoff.next()
            raise
        finally:
            self._asking = False
        if self._refusal is not None:
            log.info("PostgreSQL accepts connections again")
        self._refusal = None
        self._backoff.reset()
        return conn


async def create_pool(url: str, size: int, timeout: float, *,
                      init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
                      listener: bool = False, budget: ConnectionBudget | None = None,
                      ) -> asyncpg.Pool:
    """The worker's pool; it opens every connection the way ``connect`` does, and
    through ``RefusalBackoff``. ``listener``: one connection more, for the
    revocation listener to take out and keep (``store.listener``), so ``size``
    remain for calls; and two kept open even when idle, the listener's and one it
    can take at once if it loses its own. A connection handed back needs no reset
    query: pooled connections never LISTEN (the listener's is never handed back),
    never change session settings and hold no session-level locks, and an open
    transaction is rolled back by ``Database`` or the connection closed; so a
    release costs no round trip. ``init`` runs on each new connection (e.g. to
    attach asyncpg query loggers)."""
    extra = 1 if listener else 0
    with explained_connect_failures(url, budget):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            url, connect=RefusalBackoff().connect,
            min_size=1 + extra, max_size=size + extra, timeout=timeout,
            command_timeout=timeout, max_inactive_connection_lifetime=60, init=init,
            reset=_nothing_to_reset, server_settings={"application_name": "authsvc"})
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
        refusing new connections, means the database is unavailable. No timeout of
        its own: ``_lend``'s deadline (never later than ``AUTHSVC_DB_TIMEOUT`` from
        now) bounds the wait, and asyncpg's would cost a task per call."""
        try:
            return await self.pool.acquire()
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
