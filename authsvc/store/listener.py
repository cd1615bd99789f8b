"""Keeps a RevocationSet current from PostgreSQL's LISTEN/NOTIFY.

Every revocation NOTIFYs in its transaction. Each worker LISTENs on a
dedicated connection (a pooled one loses its listeners on release) and,
after every (re)connect, reloads the set from the table before it trusts it
again; while it is down the set's own staleness bound applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from ..clock import Clock
from ..core.backoff import Backoff
from ..core.revocations import RevocationSet
from ..errors import Unavailable
from . import sessions as session_rows
from .database import CONNECTION_ERRORS, REVOCATION_CHANNEL, connect

log = logging.getLogger(__name__)

PING_INTERVAL = 1.0  # each answered ping confirms the set; see RevocationSet.heard
APPLICATION_NAME = "authsvc-revocation-listener"
_LOST: tuple[type[BaseException], ...] = (Unavailable, *CONNECTION_ERRORS)


class RevocationListener:
    """Keeps a RevocationSet current from its own LISTEN connection."""

    def __init__(self, url: str, revocations: RevocationSet, clock: Clock,
                 window: float, timeout: float, max_staleness: float = 5.0) -> None:
        self._url = url
        # Pings well within the staleness bound, so a healthy feed is never stale.
        self._ping_interval = max(0.05, min(PING_INTERVAL, max_staleness / 3))
        self._set = revocations
        self._clock = clock
        self._window = window
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
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

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self._url, self._timeout,
                                     application_name=APPLICATION_NAME)
                await self._follow(conn, backoff)
            except _LOST as exc:
                log.warning("revocation listener lost the database: %s", type(exc).__name__)
            except Exception:
                log.exception("revocation listener failed; reconnecting")
            finally:
                self._set.lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(backoff.next())

    async def _follow(self, conn: asyncpg.Connection, backoff: Backoff) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        await conn.add_listener(
            REVOCATION_CHANNEL, lambda _c, _pid, _ch, payload: self._set.add([payload]))
        # LISTEN is active before the read, so no revocation falls in between.
        snapshot = await session_rows.revoked_since(conn, self._clock() - self._window)
        self._set.load(snapshot)
        self.ready.set()
        backoff.reset()
        while not closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), self._ping_interval)
            if not closed.is_set():
                await conn.fetchval("SELECT 1", timeout=self._timeout)
                # Every NOTIFY sent before the ping's answer has been delivered.
                self._set.heard()
                self._set.prune()

