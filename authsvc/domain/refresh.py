"""Refresh: rotation of refresh tokens, with a grace interval and reuse detection.

One transaction per refresh. Concurrency is settled by the session row lock
(see ``store.sessions``), never by Python locks, so it holds across workers
and replicas. A spent token presented again within the grace interval gets
the identical successor (derived, never stored); any other reuse revokes the
session through the one revocation mechanism.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..clock import Clock
from ..config import Settings
from ..errors import InvalidArgument, RefreshTokenInvalid, RefreshTokenReused
from ..store import events
from ..store import sessions as session_rows
from . import refresh_tokens
from .caller import Caller
from .issuer import Issuer, TokenPair
from .revocation import Revocations, Revoking
from .throttle import Throttle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Refused:
    """No successor: an unknown token or an ended session, or (``reused``) reuse
    of a spent token, whose session the transaction revoked."""

    reused: bool = False


@dataclass(frozen=True, slots=True)
class _Rotation:
    successor: str
    state: session_rows.RefreshState


class Refresh:
    def __init__(self, settings: Settings, clock: Clock, throttle: Throttle,
                 revocations: Revocations, issuer: Issuer, key_encryption_key: bytes) -> None:
        self._idle_ttl = settings.session_idle_ttl
        self._grace = settings.refresh_reuse_interval
        self._clock = clock
        self._throttle = throttle
        self._revocations = revocations
        self._issuer = issuer
        self._successor_key = refresh_tokens.successor_key(key_encryption_key)

    async def refresh(self, token: str, caller: Caller) -> TokenPair:
        if not token:
            raise InvalidArgument("refresh_token", "must not be empty")
        if len(token) > refresh_tokens.MAX_LENGTH:
            raise InvalidArgument("refresh_token",
                                  f"must be at most {refresh_tokens.MAX_LENGTH} characters")
        await self._throttle.check_refresh(caller.client_addr)
        outcome: _Rotation | _Refused
        async with self._revocations.transaction() as change:
            outcome = await self._rotate(change, token, caller)
        if isinstance(outcome, _Refused) and outcome.reused:
            raise RefreshTokenReused()
        if isinstance(outcome, _Refused):
            await self._throttle.refresh_failed(caller.client_addr)
            raise RefreshTokenInvalid()
        state = outcome.state
        return self._issuer.pair(user_id=state.user_id, session_id=state.session_id,
                                 scopes=state.scopes, refresh=outcome.successor,
                                 now=change.now, session_expires_at=state.session_expires_at)

    async def introspect(self, token: str) -> session_rows.ActiveRefresh | None:
        """RFC 7662 for a refresh token: its session when a refresh with it would
        succeed now, without spending it; None for any other token."""
        if not token or len(token) > refresh_tokens.MAX_LENGTH:
            return None
        async with self._revocations.transaction() as change:
            return await session_rows.active_refresh_token(
                change.conn, refresh_tokens.token_hash(token), change.now, self._idle_ttl)

    async def _rotate(self, change: Revoking, token: str, caller: Caller,
                      ) -> _Rotation | _Refused:
        """Inside the refresh transaction: the successor, or why there is none."""
        conn, now = change.conn, change.now
        digest = refresh_tokens.token_hash(token)
        if not await session_rows.lock_session_of_token(conn, digest):
            return _Refused()
        state = await session_rows.refresh_state(conn, digest)
        assert state is not None
        audit = {"user_id": state.user_id, "session_id": state.session_id, **caller.audit()}
        if (state.session_revoked or state.user_disabled
                or now >= state.session_expires_at
                or now >= state.session_last_used_at + self._idle_ttl):
            await events.record(conn, "refresh.failure", now, reason="session_ended", **audit)
            return _Refused()
        successor = refresh_tokens.successor(self._successor_key, token)
        if state.spent_at is None:
            await session_rows.spend(conn, state.token_id, now)
            await session_rows.insert_refresh_token(
                conn, state.session_id, refresh_tokens.token_hash(successor), now,
                parent_id=state.token_id)
        elif not (state.successor_unspent and now - state.spent_at <= self._grace):
            await events.record(conn, "refresh.reuse_detected", now, **audit)
            await change.revoke([state.session_id], reason="refresh_token_reused",
                                caller=caller)
            log.warning("refresh token reuse detected; session %s revoked", state.session_id)
            return _Refused(reused=True)
        await session_rows.touch(conn, state.session_id, now)
        await events.record(conn, "refresh.success", now, **audit)
        return _Rotation(successor, state)
