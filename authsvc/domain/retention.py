"""Forgetting what can no longer matter, in small batches.

- sessions revoked, or past their absolute lifetime, longer ago than the
  revocation retention window (access-token lifetime, leeway
  and skew allowance: ``core.revocations.retention_window``), so no token of
  theirs can still pass anywhere, and a revocation check that finds no
  session answers "revoked" (``store.sessions.is_revoked``); their legacy
  refresh-token rows go with them (a session that ended by idling goes when
  its absolute lifetime is over too: see ``store.sessions.prune_ended``);
- audit events older than ``AUTHSVC_AUDIT_RETENTION`` (90 days by default;
  0 keeps everything);
- throttle counters past their window and block, and expired trusted pairs;
- sign-in challenges waiting for a second factor, and WebAuthn ceremonies,
  once expired (``challenges``).

Every age is judged by the database's clock. Each pass deletes in batches of
``BATCH`` rows, one short statement each, and at most ``MAX_BATCHES``
batches per table, so housekeeping never holds long locks and a backlog
drains over a few passes. Each pass that deletes anything is a log line and
adds to the ``authsvc_pruned_rows_total{table}`` counter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..store import events
from ..store import factors as factor_rows
from ..store import sessions as session_rows
from ..store.database import Connection, Database
from .throttling.throttle import Throttle

log = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 100


class Retention:
    def __init__(self, db: Database, throttle: Throttle, *, audit_retention: float,
                 session_retention: float,
                 observe: Callable[[dict[str, int]], None] = lambda pruned: None) -> None:
        self._db = db
        self._throttle = throttle
        self._audit_retention = audit_retention
        self._session_retention = session_retention
        self._observe = observe

    async def prune(self) -> dict[str, int]:
        """One pass; rows deleted per table."""
        pruned = {
            "sessions": await self._drain(lambda conn: session_rows.prune_ended(
                conn, after=self._session_retention, batch=BATCH)),
            "auth_events": 0 if self._audit_retention <= 0 else await self._drain(
                lambda conn: events.prune(conn, self._audit_retention, BATCH)),
        }
        pruned["throttles"] = await _batches(lambda: self._throttle.forget_expired(BATCH))
        pruned["challenges"] = await self._drain(
            lambda conn: factor_rows.prune_challenges(conn, BATCH))
        self._observe(pruned)
        if any(pruned.values()):
            log.info("pruned", extra={"fields": {"pruned": pruned}})
        return pruned

    async def _drain(self, delete: Callable[[Connection], Awaitable[int]]) -> int:
        """``_batches`` of ``delete``, each on a pooled connection of its own."""
        async def batch() -> int:
            async with self._db.connection() as conn:
                return await delete(conn)
        return await _batches(batch)


async def _batches(delete: Callable[[], Awaitable[int]]) -> int:
    """Run ``delete`` (one batch, rows deleted) until it deletes fewer than ``BATCH``
    rows, at most ``MAX_BATCHES`` times; rows deleted in all. The event loop runs
    other work between batches, and the connection goes back to the pool after each.
    (The throttle batch deletes up to ``BATCH`` rows from each of two tables: a sum
    under ``BATCH`` means neither has a full batch left.)"""
    total = 0
    for _ in range(MAX_BATCHES):
        deleted = await delete()
        total += deleted
        if deleted < BATCH:
            break
        await asyncio.sleep(0)
    return total
