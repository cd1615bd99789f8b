"""The set of recently revoked sessions, and how far to trust it.

authsvc's workers fill it from LISTEN/NOTIFY (``authsvc.store.listener``);
the LocalVerifier from ``WatchRevocations``. The set holds only sessions
revoked within ``retention_window``, the access-token lifetime plus twice
the leeway: older sessions' access tokens have expired on every replica.

Trust is counted from the last moment the feed *confirmed* the set is
current (``heard``: a load, a revocation, a heartbeat, a successful ping),
not from when a broken feed is noticed: a silent feed (a frozen server, a
stalled connection) is trusted for ``max_staleness`` seconds after its last
word, and then ``is_revoked`` answers ``None`` ("ask someone who knows").

A reload after a reconnect merges into the set, never replaces it: a
revocation this replica acknowledged is not forgotten because a database
that failed over lost it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from ..clock import Clock


def retention_window(access_token_ttl: float, leeway: float) -> float:
    """How long a revocation must be kept: until no token of the session can pass on
    any replica. A token lives ``access_token_ttl`` after its iat by the issuing
    replica's clock and passes ``leeway`` past exp; a replica whose clock is behind
    by up to ``leeway`` (the skew authsvc tolerates at all: more, and fresh tokens
    fail their iat there) sees that moment later by as much. Times read back from
    the database were written by some replica's clock, off by the same bound."""
    return access_token_ttl + 2 * leeway


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
        self._closed = False

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
        """Merge a fresh read of the source (session id → when revoked) into the set,
        keeping what it already holds; the feed is current as of now."""
        held = self._revoked
        for sid, at in revoked.items():
            held[sid] = max(at, held.get(sid, at))
        self.heard()

    def heard(self) -> None:
        """The feed just confirmed the set is current: trust it for max_staleness more."""
        self._trusted_until = self._monotonic() + self._max_staleness

    def add(self, session_ids: list[str]) -> None:
        """Revocations the feed just delivered (which also confirms it is current)."""
        self.heard()
        self.remember(session_ids)

    def remember(self, session_ids: list[str]) -> None:
        """Revocations this worker committed itself: refused here at once, and passed
        to watchers; they say nothing about whether the feed is current."""
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
        """The feed is down: what we have stays trusted until max_staleness after it
        last spoke; every watch stream ends, so watchers apply their own bound."""
        self.end_watches()

    def end_watches(self) -> None:
        """End every watch stream (the feed is down); watchers may come back."""
        for queue in list(self._watchers):
            self._drop(queue)

    def close_watches(self) -> None:
        """End every watch stream for good (this worker is stopping): a stream that
        starts watching from now on ends at once."""
        self._closed = True
        self.end_watches()

    def prune(self) -> None:
        horizon = self._clock() - self._window
        for sid in [s for s, at in self._revoked.items() if at < horizon]:
            del self._revoked[sid]

    def snapshot(self) -> list[str]:
        return list(self._revoked)

    def watch(self, maxsize: int = 10_000) -> asyncio.Queue[list[str] | None]:
        queue: asyncio.Queue[list[str] | None] = asyncio.Queue(maxsize)
        self._watchers.add(queue)
        if self._closed:
            self._drop(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[list[str] | None]) -> None:
        self._watchers.discard(queue)

    def _drop(self, queue: asyncio.Queue[list[str] | None]) -> None:
        self._watchers.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)
