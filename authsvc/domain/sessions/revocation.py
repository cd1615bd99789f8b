"""Revoking sessions: one mechanism for every path that ends sessions.

``Revocations.transaction()`` opens the transaction a change runs in; its
``revoke`` revokes sessions, writes their ``session.revoked`` audit rows and
NOTIFYs the other workers in that transaction, and once it commits this
worker's own ``RevocationSet`` refuses their access tokens at once. Sign-out
(RFC 7009 Revoke), refresh-token reuse, disabling a user, a password change
and an administrator's RevokeSession all go through it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from ...clock import Clock
from ...core.revocations import RevocationSet
from ...store import sessions as session_rows
from ...store.database import Connection, Database
from ..caller import NOBODY, Caller

log = logging.getLogger(__name__)


class Revoking:
    """A transaction that may revoke sessions; ``now`` is its one moment by this
    replica's clock (for tokens it issues: stored times are the database's)."""

    def __init__(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.revoked: list[str] = []

    async def revoke(self, session_ids: list[str] = [], *,  # noqa: B006 (never mutated)
                     user_id: str | None = None, reason: str,
                     caller: Caller = NOBODY) -> list[str]:
        """Revoke ``session_ids`` and every session of ``user_id``; the ids revoked now."""
        revoked = await session_rows.revoke(
            self.conn, reason=reason, session_ids=session_ids, user_id=user_id,
            **caller.audit())
        self.revoked += revoked
        return revoked


class Revocations:
    def __init__(self, db: Database, clock: Clock, revoked: RevocationSet | None) -> None:
        self._db = db
        self._clock = clock
        self._set = revoked  # None in the CLI: the workers hear the NOTIFY

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Revoking]:
        async with self._db.transaction() as conn:
            revoking = Revoking(conn, self._clock())
            yield revoking
        self.remember(revoking.revoked)

    def remember(self, session_ids: list[str]) -> None:
        """Sessions a committed statement revoked: refused by this worker at once."""
        if session_ids and self._set is not None:
            self._set.remember(session_ids)
