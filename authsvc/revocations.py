"""The set of recently revoked sessions, kept current by LISTEN/NOTIFY.

Every revocation NOTIFYs in its transaction. Each worker LISTENs on a
dedicated connection (a pooled one loses its listeners on release) and,
after every (re)connect, reloads the set from the table before it trusts it
again. The set holds only sessions revoked within the last access-token
lifetime plus leeway: older sessions' access tokens have expired anyway.

While the listener is down the set is trusted for ``max_staleness``
seconds; past that ``is_revoked`` answers ``None`` ("ask the database").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

import asyncpg

from .clock import Clock
from .errors import Unavailable
from .store import sessions as session_rows
from .store.database import CONNECTION_ERRORS, REVOCATION_CHANNEL, connect

log = logging.getLogger(__name__)

PING_INTERVAL = 1.0
MAX_BACKOFF = 5.0
_LOST: tuple[type[BaseException], ...] = (Unavailable, *CONNECTION_ERRORS)


class RevocationSet:
    """Session ids revoked within ``window`` seconds, and how far to trust them."""

    def __init__(self, clock: Clock, window: float, max_staleness: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window = window
        self._max_staleness = max_staleness
        self._monotonic = monotonic
        self._revoked: dict[str, float] = {}
        self._trusted_until = -math.inf  # nothing loaded yet
        self._watchers: set[asyncio.Queue[list[str] | None]] = set()

    def __len__(self) -> int:
        return len(self._revoked)

    def is_revoked(self, session_id: str) -> bool | None:
        """True/False, or None when the set is too stale to answer."""
        if session_id in self._revoked:
            return True
        if self._monotonic() > self._trusted_until:
            return None
        return False

    @property
    def trusted(self) -> bool:
        return self._monotonic() <= self._trusted_until

    def load(self, revoked: dict[str, float]) -> None:
        """Replace the set with a fresh read of the table; trust it from now on."""
        self._revoked = dict(revoked)
        self._trusted_until = math.inf

    def add(self, session_ids: list[str]) -> None:
        now = self._clock()
        fresh = [s for s in session_ids if s not in self._revoked]
        for sid in fresh:
            self._revoked[sid] = now
        if fresh:
            for queue in list(self._watchers):
                try:
                    queue.put_nowait(fresh)
                except asyncio.QueueFull:
                    self._drop(queue)  # it fell behind: it resynchronises by reconnecting

    def lost(self) -> None:
        """The feed is down: trust what we have for max_staleness more seconds, and
        end every watch stream so watchers fall back to their own staleness rules."""
        if self._trusted_until == math.inf:
            self._trusted_until = self._monotonic() + self._max_staleness
        for queue in list(self._watchers):
            self._drop(queue)

    def prune(self) -> None:
        horizon = self._clock() - self._window
        for sid in [s for s, at in self._revoked.items() if at < horizon]:
            del self._revoked[sid]

    def snapshot(self) -> list[str]:
        return list(self._revoked)

    def watch(self, maxsize: int = 10_000) -> asyncio.Queue[list[str] | None]:
        queue: asyncio.Queue[list[str] | None] = asyncio.Queue(maxsize)
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[list[str] | None]) -> None:
        self._watchers.discard(queue)

    def _drop(self, queue: asyncio.Queue[list[str] | None]) -> None:
        self._watchers.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


class RevocationListener:
    """Keeps a RevocationSet current from its own LISTEN connection."""

    def __init__(self, url: str, revocations: RevocationSet, clock: Clock,
                 window: float, timeout: float) -> None:
        self._url = url
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
        backoff = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self._url, self._timeout)
                await self._follow(conn)
                backoff = 0.1
            except _LOST as exc:
                log.warning("revocation listener lost the database: %s", type(exc).__name__)
            except Exception:
                log.exception("revocation listener failed; reconnecting")
            finally:
                self._set.lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _follow(self, conn: asyncpg.Connection) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        await conn.add_listener(
            REVOCATION_CHANNEL, lambda _c, _pid, _ch, payload: self._set.add([payload]))
        # LISTEN is active before the read, so no revocation falls in between.
        snapshot = await session_rows.revoked_since(conn, self._clock() - self._window)
        self._set.load(snapshot)
        self.ready.set()
        while not closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), PING_INTERVAL)
            if not closed.is_set():
                await conn.fetchval("SELECT 1", timeout=self._timeout)
                self._set.prune()

