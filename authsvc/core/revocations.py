"""The set of recently revoked sessions, and how far to trust it.

authsvc's workers fill it from LISTEN/NOTIFY (``authsvc.store.listener``);
the LocalVerifier from ``WatchRevocations``. The set holds only sessions
revoked within the last access-token lifetime plus leeway: older sessions'
access tokens have expired anyway.

While its feed is down the set is trusted for ``max_staleness`` seconds;
past that ``is_revoked`` answers ``None`` ("ask someone who knows").
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from ..clock import Clock


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
        self.end_watches()

    def end_watches(self) -> None:
        """End every watch stream (the feed is down, or this worker is stopping)."""
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
