"""The set of recently revoked sessions, and how far to trust it.

authsvc's workers fill it from LISTEN/NOTIFY (``authsvc.store.listener``);
the LocalVerifier from ``WatchRevocations``. The set holds each revoked
session for ``retention_window`` (the access-token lifetime, the leeway and
a skew allowance): after that no token of the session can pass on any
replica. How long an entry is kept is counted on this process's monotonic
clock from when it arrived, or, for what a reload reads back, from what the
*database's* clock says is left of it; never by comparing this replica's
wall clock with a time another replica or the database wrote, so replica
clocks that disagree cannot make a revocation be forgotten early.

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
from collections.abc import Callable, Mapping


def retention_window(access_token_ttl: float, leeway: float) -> float:
    """How long after a revocation it must still be kept: until no token of the
    session can pass on any replica. The newest token was issued before the
    revocation committed and lives ``access_token_ttl`` after its iat by the
    issuing replica's clock; a replica accepts it ``leeway`` past its exp by its
    own clock. Each replica's clock is within ``leeway`` of the database's (checked
    at start-up, ``runtime.runner.check_clock``, and watched as a metric), so two replicas
    differ by up to twice that: ttl + leeway + 2 * leeway of skew allowance."""
    return access_token_ttl + 3 * leeway


class RevocationSet:
    """Revoked session ids, each kept for ``window`` seconds, and how far to trust them."""

    def __init__(self, window: float, max_staleness: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._max_staleness = max_staleness
        self._monotonic = monotonic
        self._revoked: dict[str, float] = {}  # session id → forget after (monotonic)
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

    def lag(self) -> float:
        """Seconds since the feed last confirmed the set (``inf``: never)."""
        return self._monotonic() - (self._trusted_until - self._max_staleness)

    @property
    def trusted(self) -> bool:
        return self._monotonic() <= self._trusted_until

    @property
    def window(self) -> float:
        return self._window

    def resize(self, window: float) -> None:
        """Keep each session ``window`` seconds after it arrived (a LocalVerifier learns
        the access-token lifetime and leeway from authsvc after it has started): a longer
        window also extends what is held; a shorter one never cuts it (holding a
        revocation longer is always safe). Safe beside the thread that feeds the set."""
        grow = window - self._window
        self._window = window
        if grow > 0:
            for sid, until in list(self._revoked.items()):
                self._revoked[sid] = until + grow

    def load(self, revoked: Mapping[str, float]) -> None:
        """Merge a fresh read of the source into the set, keeping what it already
        holds; the feed is current as of now. ``revoked`` maps each session id to how
        many more seconds it must be kept (the database works that out by its own
        clock; a feed that sends only ids passes ``window``)."""
        now, held = self._monotonic(), self._revoked
        for sid, keep in revoked.items():
            until = now + min(keep, self._window)
            held[sid] = max(until, held.get(sid, until))
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
        until = self._monotonic() + self._window
        fresh = [s for s in session_ids if s not in self._revoked]
        for sid in fresh:
            self._revoked[sid] = until
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
        """Forget the sessions whose time is up."""
        now = self._monotonic()
        for sid in [s for s, until in self._revoked.items() if until < now]:
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
