"""Keeps a RevocationSet current from PostgreSQL's LISTEN/NOTIFY.

Every revocation NOTIFYs in its transaction. Each worker LISTENs on a
connection of its own and, after every (re)connect, reloads the set from the
table before it trusts it again; while it is down the set's own staleness
bound applies.

Where that connection comes from: the worker's pool, taken out for good. The
pool has one connection more than ``AUTHSVC_DB_POOL_SIZE`` for it
(``database.create_pool(listener=True)``); the listener acquires one, names it
(``application_name``), LISTENs, and never hands it back: when it is lost, or
at stop, it is closed (a connection that LISTENed must not serve calls), and
the listener takes another from the pool. A connection opened apart, as it
once was, competes for the server's free slots with every pool of the fleet:
over budget, when the listeners' connections were cut, the pools took every
freed slot and no listener came back, so Validate fell back to the database
and answered UNAVAILABLE. Taken from the pool, it needs no free slot whenever
the worker holds any connection (the pool keeps two open even when idle); it
waits at most for one call to hand its connection back, ahead of later calls.
Calls then have one connection fewer until the pool can grow again: the feed
that spares Validate its database round trip is worth more than that one
connection. The budget stays workers x (pool size + 1) per replica.

Idle, the listener costs the database one short transaction every half of
``AUTHSVC_REVOCATION_MAX_STALENESS`` (2.5 s by default): a ping, answered on
the listener's own connection. Every NOTIFY is delivered before the answer to
a ping sent after it, so an answered ping confirms the set; with a ping every
half of the staleness bound, a healthy feed stays trusted with half the bound
to spare for the ping's round trip, and a feed that goes silent is distrusted
(``is_revoked`` answers ``None``, so Validate asks the database) no later than
the bound after its last word, however the pings are spaced: the bound is the
set's own (``RevocationSet.heard``). The worker's health check reads the last
answer (``answered_within``) instead of asking the database itself.

Each ping also reads the database's clock, so the listener knows how far
this replica's clock is off it (``clock_offset``, exported as a metric); an
offset beyond the clock leeway is logged as an error when it begins and when
it ends, since past it tokens this replica issues may be refused elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import asyncpg

from ..clock import Clock
from ..core.backoff import Backoff
from ..core.revocations import RevocationSet
from ..core.tasks import raise_if_cancelled
from ..errors import Unavailable
from . import sessions as session_rows
from .database import (
    CONNECTION_ERRORS,
    REVOCATION_CHANNEL,
    clock_beyond,
    clock_offset,
)

log = logging.getLogger(__name__)

PINGS_PER_STALENESS = 2  # pings per staleness bound; see the module's docstring
MIN_PING_INTERVAL = 0.05
APPLICATION_NAME = "authsvc-revocation-listener"
_LOST: tuple[type[BaseException], ...] = (Unavailable, *CONNECTION_ERRORS)


class RevocationListener:
    """Keeps a RevocationSet current from a LISTEN connection it takes from ``pool``
    and keeps (see the module's docstring)."""

    def __init__(self, pool: asyncpg.Pool, revocations: RevocationSet, clock: Clock,
                 window: float, timeout: float, max_staleness: float = 5.0,
                 max_clock_offset: float = 30.0) -> None:
        self._pool = pool
        # Pings within the staleness bound, so a healthy feed is never stale.
        self.ping_interval = max(MIN_PING_INTERVAL, max_staleness / PINGS_PER_STALENESS)
        self._answered_at = -math.inf  # event-loop time of the last answered ping or load
        self._set = revocations
        self._clock = clock
        self._window = window
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._max_clock_offset = max_clock_offset
        self.clock_offset = 0.0  # this replica's clock minus the database's, last measured
        self.ready = asyncio.Event()

    async def start(self) -> None:
        """Start listening; wait (up to the timeout) until the set is loaded."""
        self._task = asyncio.create_task(self._run(), name="revocation-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), self._timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def answered_within(self, seconds: float) -> bool:
        """Whether the database answered this listener within the last ``seconds``."""
        return asyncio.get_running_loop().time() - self._answered_at <= seconds

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            raise_if_cancelled()
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._pool.acquire(timeout=self._timeout)
                await self._follow(conn, backoff)
            except _LOST as exc:
                log.warning("revocation listener lost the database: %s", type(exc).__name__)
            except Exception:
                log.exception("revocation listener failed; reconnecting")
            finally:
                self._set.lost()
                if conn is not None:
                    # Closed, never handed back: it LISTENs. The pool opens another
                    # in its place when it needs one.
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(backoff.next())

    async def _follow(self, conn: asyncpg.Connection, backoff: Backoff) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        await conn.execute("SELECT set_config('application_name', $1, false)",
                           APPLICATION_NAME, timeout=self._timeout)
        await conn.add_listener(
            REVOCATION_CHANNEL, lambda _c, _pid, _ch, payload: self._set.add([payload]))
        # LISTEN is active before the read, so no revocation falls in between.
        self._set.load(await session_rows.revoked_within(conn, self._window))
        self._answered_at = asyncio.get_running_loop().time()
        self.ready.set()
        backoff.reset()
        while not closed.is_set():
            raise_if_cancelled()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancellation that arrives as the event is set, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ping_interval):
                    await closed.wait()
            if not closed.is_set():
                await self._ping(conn)
                # Every NOTIFY sent before the ping's answer has been delivered.
                self._set.heard()
                self._set.prune()

    async def _ping(self, conn: asyncpg.Connection) -> None:
        """Ask the database for its clock; note how far ours is off it."""
        offset = await clock_offset(conn, self._clock, self._timeout)
        self._answered_at = asyncio.get_running_loop().time()
        was_off = clock_beyond(self.clock_offset, self._max_clock_offset)
        self.clock_offset = offset
        is_off = clock_beyond(offset, self._max_clock_offset)
        if is_off and not was_off:
            log.error("this replica's clock is %.1f s off the database's, more than the"
                      " clock leeway (%g s): its tokens may be refused elsewhere; fix NTP",
                      offset, self._max_clock_offset)
        elif was_off and not is_off:
            log.warning("this replica's clock is back within the leeway of the database's"
                        " (%.1f s)", offset)

