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
from ...core import tokens
from ...core.revocations import RevocationSet
from ...core.tokens import AccessClaims
from ...errors import InvalidArgument, TokenInvalid, TokenMissing, Unavailable
from ...store import sessions as session_rows
from ...store.database import Connection, Database
from ..caller import NOBODY, Caller
from ..tokens.validator import Validator
from . import refresh_tokens

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


class SignOut:
    """RFC 7009 Revoke: an unknown or invalid token is not an error.

    ``all_sessions`` ends every session of the caller's user (the door has
    verified the caller's access token)."""

    def __init__(self, db: Database, revocations: Revocations, validator: Validator,
                 tokens: refresh_tokens.RefreshTokens) -> None:
        self._db = db
        self._tokens = tokens
        self._revocations = revocations
        self._validator = validator

    async def revoke(self, token: str, *, all_sessions: bool, claims: AccessClaims | None,
                     caller: Caller) -> None:
        if not token and not all_sessions:
            raise InvalidArgument("token", "must not be empty")
        if len(token) > tokens.MAX_TOKEN_LENGTH:
            raise InvalidArgument("token", f"must be at most {tokens.MAX_TOKEN_LENGTH} characters")
        if all_sessions and claims is None:
            raise TokenMissing()
        user_id = claims.user_id if all_sessions and claims is not None else None
        session_id = await self._session_of(token) if token else None
        async with self._revocations.transaction() as change:
            if session_id is not None:
                await change.revoke([session_id], reason="revoked", caller=caller)
            if user_id is not None:
                await change.revoke(user_id=user_id, reason="revoked_all", caller=caller)

    async def _session_of(self, token: str) -> str | None:
        if token.count(".") == 2:
            try:
                return (await self._validator.verify_ignoring_revocation(token)).session_id
            except (TokenInvalid, InvalidArgument):
                return None
            except Unavailable:
                raise
            except Exception:  # any other verification failure: RFC 7009 says OK
                return None
        async with self._db.connection() as conn:
            found = await refresh_tokens.presented(self._tokens, conn, token)
        return None if found is None else found[0]
