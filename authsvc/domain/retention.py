"""Forgetting what can no longer matter, in small batches.

- audit events older than ``AUTHSVC_AUDIT_RETENTION`` (90 days by default;
  0 keeps everything);
- throttle counters past their window and expired trusted pairs.

Each pass deletes in batches of ``BATCH`` rows, one short statement each,
and at most ``MAX_BATCHES`` batches, so housekeeping never holds long locks
and a backlog drains over a few passes.
"""

from __future__ import annotations

import logging

from ..clock import Clock
from ..store import events
from ..store.database import Database
from .throttle import Throttle

log = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 100


class Retention:
    def __init__(self, db: Database, clock: Clock, throttle: Throttle,
                 audit_retention: float) -> None:
        self._db = db
        self._clock = clock
        self._throttle = throttle
        self._audit_retention = audit_retention

    async def prune(self) -> dict[str, int]:
        """One pass; rows deleted per table."""
        pruned = {"auth_events": 0}
        if self._audit_retention > 0:
            before = self._clock() - self._audit_retention
            for _ in range(MAX_BATCHES):
                async with self._db.connection() as conn:
                    deleted = await events.prune(conn, before, BATCH)
                pruned["auth_events"] += deleted
                if deleted < BATCH:
                    break
        await self._throttle.forget_expired()
        if any(pruned.values()):
            log.info("pruned", extra={"fields": {"pruned": pruned}})
        return pruned
