"""Refresh: rotation of refresh tokens, with a grace interval and reuse detection.

One statement, one transaction (``store.sessions.refresh``): under the
session's row lock the database decides, by its own clock, whether the
presented counter is the current one (rotate), the previous one within the
grace interval (the identical successor again: tokens are recomputed from
session and counter, never stored), or older (reuse: the session is revoked
through the one revocation statement). Concurrency is settled by that row
lock, never by Python locks, so it holds across workers and replicas. The
refresh throttle is checked in the same statement; only a refused token
costs a second one, to count the failure.
"""

from __future__ import annotations

import logging
from typing import NoReturn, Protocol

from ...core.tokens import MAX_TOKEN_LENGTH
from ...errors import InvalidArgument, RateLimited, RefreshTokenInvalid, RefreshTokenReused
from ...store.sessions import ActiveRefresh, RefreshOutcome, RefreshRefused
from ..caller import Caller
from ..throttling.throttle import Throttle
from ..tokens.issuer import TokenPair
from . import refresh_tokens
from .opener import Sessions
from .refresh_tokens import MAX_LENGTH, RefreshTokens
from .storage import Storage

log = logging.getLogger(__name__)


class Remembers(Protocol):
    """``Revocations``: this worker refuses a revoked session's tokens at once."""

    def remember(self, session_ids: list[str]) -> None: ...


class Refresh:
    def __init__(self, storage: Storage, throttle: Throttle, revocations: Remembers,
                 sessions: Sessions, tokens: RefreshTokens, *, grace: float, idle_ttl: float,
                 audit_success: bool) -> None:
        """``grace``: how long the spent token still gets its successor again;
        ``idle_ttl``: how long a session lives unrefreshed; ``audit_success``: whether
        successful refreshes get audit rows (refusals always do)."""
        self._db = storage.db
        self._rows = storage.sessions
        self._idle_ttl = idle_ttl
        self._grace = grace
        self._audit_success = audit_success
        self._throttle = throttle
        self._revocations = revocations
        self._sessions = sessions
        self._tokens = tokens

    async def introspect(self, token: str) -> ActiveRefresh | None:
        """RFC 7662 for a refresh token: its session when a refresh with it would
        succeed now, without spending it; None for any other token."""
        if not token or len(token) > MAX_LENGTH:
            return None
        async with self._db.connection() as conn:
            presented = await refresh_tokens.presented(self._tokens, conn, token, self._rows)
            if presented is None:
                return None
            return await self._rows.active_refresh(conn, *presented, idle=self._idle_ttl)

    async def refresh(self, token: str, caller: Caller) -> TokenPair:
        if not token:
            raise InvalidArgument("refresh_token", "must not be empty")
        if len(token) > MAX_LENGTH and not _access_token_shaped(token):
            raise InvalidArgument("refresh_token", f"must be at most {MAX_LENGTH} characters")
        async with self._db.connection() as conn:
            found = await refresh_tokens.presented(self._tokens, conn, token, self._rows)
            if found is not None:
                session_id, counter = found
                done = await self._rows.refresh(
                    conn, session_id, counter, grace=self._grace, idle=self._idle_ttl,
                    audit_success=self._audit_success,
                    throttle=self._throttle.refresh_key(caller.client_addr), **caller.audit())
        if found is None:  # nothing to look up: the throttle is asked on its own
            await self._throttle.check_refresh(caller.client_addr)
            await self._invalid(caller)
        if isinstance(done, RefreshRefused):
            match done.outcome:
                case RefreshOutcome.THROTTLED:
                    raise RateLimited(done.retry_after)
                case RefreshOutcome.REUSED:
                    self._revocations.remember([session_id])
                    log.warning("refresh token reuse detected; session %s revoked",
                                session_id)
                    raise RefreshTokenReused()
                case _:  # unknown, ended
                    await self._invalid(caller)
        successor = self._tokens.token(session_id, done.counter)
        if done.outcome is RefreshOutcome.REPEATED and counter < 0:  # a legacy token's grace
            successor = self._tokens.legacy_successor(token)
        return await self._sessions.reissue(session_id, done, successor)

    async def _invalid(self, caller: Caller) -> NoReturn:
        """A refused token: counted against the client, then REFRESH_TOKEN_INVALID."""
        await self._throttle.refresh_failed(caller.client_addr)
        raise RefreshTokenInvalid()


def _access_token_shaped(token: str) -> bool:
    """An access token (a JWT, which amr, auth_time and scopes can make longer than any
    refresh token) presented where a refresh token belongs: refused as an invalid
    refresh token, like any other token authsvc did not issue as one, not as oversize
    input."""
    return token.count(".") == 2 and len(token) <= MAX_TOKEN_LENGTH
