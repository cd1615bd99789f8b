"""Sign-in, refresh rotation and revocation: the session lifecycle.

Each operation that changes rows is one transaction. Concurrency is settled
by the session row lock (see ``store.sessions``), never by Python locks, so
it holds across workers and replicas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import identifiers, refresh_tokens, tokens
from .clock import Clock
from .config import Settings
from .errors import (
    InvalidArgument,
    InvalidCredentials,
    RateLimited,
    RefreshTokenInvalid,
    RefreshTokenReused,
    TokenInvalid,
    Unavailable,
)
from .identifiers import Kind
from .keystore import KeyStore
from .passwords import Passwords
from .revocations import RevocationSet
from .store import events
from .store import sessions as session_rows
from .store import users as user_rows
from .store.database import Connection, Database
from .throttle import Throttle
from .validation import Validator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, for the audit log. Both values are already sanitised."""

    client_addr: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class _Refused:
    """No successor: an unknown token or an ended session, or (``reused_session``
    set) reuse of a spent token, whose session the transaction revoked."""

    reused_session: str | None = None


@dataclass(frozen=True, slots=True)
class _Rotation:
    successor: str
    state: session_rows.RefreshState


class Sessions:
    def __init__(self, db: Database, settings: Settings, clock: Clock, keystore: KeyStore,
                 passwords: Passwords, validator: Validator,
                 revocations: RevocationSet, throttle: Throttle) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._keystore = keystore
        self._passwords = passwords
        self._validator = validator
        self._revocations = revocations
        self._throttle = throttle
        assert settings.key_encryption_key is not None
        self._successor_key = refresh_tokens.successor_key(settings.key_encryption_key.reveal())

    async def sign_in(self, kind: Kind, raw_identifier: str, password: str,
                      caller: Caller) -> TokenPair:
        identifier = identifiers.normalize(kind, raw_identifier)
        if not password:
            raise InvalidArgument("password", "must not be empty")
        if len(password) > identifiers.MAX_PASSWORD:
            raise InvalidArgument("password",
                                  f"must be at most {identifiers.MAX_PASSWORD} characters")
        try:
            await self._throttle.check_sign_in(identifier, caller.client_addr)
        except RateLimited:
            async with self._db.connection() as conn:
                await events.record(conn, "signin.throttled", self._clock(), **_audit(caller))
            raise
        async with self._db.connection() as conn:
            user = await user_rows.find(conn, identifier)
        verdict = await self._passwords.verify(user.password_hash if user else None, password)
        now = self._clock()
        if user is None or not verdict.ok or user.disabled:
            reason = ("unknown_user" if user is None else
                      "wrong_password" if not verdict.ok else "disabled")
            await self._throttle.sign_in_failed(identifier, caller.client_addr)
            async with self._db.connection() as conn:
                await events.record(conn, "signin.failure", now, reason=reason,
                                    user_id=user.id if user else None, **_audit(caller))
            raise InvalidCredentials()
        await self._throttle.sign_in_succeeded(identifier, caller.client_addr)
        if verdict.needs_rehash:
            await self._rehash(user.id, user.password_hash, password)
        refresh = refresh_tokens.new_token()
        async with self._db.transaction() as conn:
            session_id = await session_rows.create(
                conn, user_id=user.id, scopes=user.scopes, now=now,
                ttl=self._settings.session_ttl, **_audit(caller))
            await session_rows.insert_refresh_token(
                conn, session_id, refresh_tokens.token_hash(refresh), now)
            await events.record(conn, "signin.success", now, user_id=user.id,
                                session_id=session_id, **_audit(caller))
        return self._pair(user.id, session_id, user.scopes, refresh, now,
                          session_expires_at=now + self._settings.session_ttl)

    async def refresh(self, token: str, caller: Caller) -> TokenPair:
        if not token:
            raise InvalidArgument("refresh_token", "must not be empty")
        if len(token) > refresh_tokens.MAX_LENGTH:
            raise InvalidArgument("refresh_token",
                                  f"must be at most {refresh_tokens.MAX_LENGTH} characters")
        await self._throttle.check_refresh(caller.client_addr)
        now = self._clock()
        digest = refresh_tokens.token_hash(token)
        outcome: _Rotation | _Refused
        async with self._db.transaction() as conn:
            outcome = await self._rotate(conn, token, digest, now, caller)
        if isinstance(outcome, _Refused) and outcome.reused_session is not None:
            # Committed: this worker refuses the session's access tokens at once;
            # the others hear the NOTIFY.
            self._revocations.add([outcome.reused_session])
            raise RefreshTokenReused()
        if isinstance(outcome, _Refused):
            await self._throttle.refresh_failed(caller.client_addr)
            raise RefreshTokenInvalid()
        state = outcome.state
        return self._pair(state.user_id, state.session_id, state.scopes, outcome.successor,
                          now, session_expires_at=state.session_expires_at)

    async def _rotate(self, conn: Connection, token: str, digest: bytes, now: float,
                      caller: Caller) -> _Rotation | _Refused:
        """Inside the refresh transaction: the successor, or why there is none."""
        if not await session_rows.lock_session_of_token(conn, digest):
            return _Refused()
        state = await session_rows.refresh_state(conn, digest)
        assert state is not None
        audit = {"user_id": state.user_id, "session_id": state.session_id, **_audit(caller)}
        settings = self._settings
        if (state.session_revoked or state.user_disabled
                or now >= state.session_expires_at
                or now >= state.session_last_used_at + settings.session_idle_ttl):
            await events.record(conn, "refresh.failure", now, reason="session_ended", **audit)
            return _Refused()
        successor = refresh_tokens.successor(self._successor_key, token)
        if state.spent_at is None:
            await session_rows.spend(conn, state.token_id, now)
            await session_rows.insert_refresh_token(
                conn, state.session_id, refresh_tokens.token_hash(successor), now,
                parent_id=state.token_id)
        elif not (state.successor_unspent
                  and now - state.spent_at <= settings.refresh_reuse_interval):
            await session_rows.revoke(conn, [state.session_id], now, "refresh_token_reused")
            await events.record(conn, "refresh.reuse_detected", now, **audit)
            log.warning("refresh token reuse detected; session %s revoked", state.session_id)
            return _Refused(reused_session=state.session_id)
        await session_rows.touch(conn, state.session_id, now)
        await events.record(conn, "refresh.success", now, **audit)
        return _Rotation(successor, state)

    async def revoke(self, token: str, *, all_sessions: bool, bearer: str | None,
                     caller: Caller) -> None:
        """RFC 7009: an unknown or invalid token is not an error. ``all_sessions``
        needs a valid bearer access token and ends every session of its user."""
        if not token and not all_sessions:
            raise InvalidArgument("token", "must not be empty")
        if len(token) > tokens.MAX_TOKEN_LENGTH:
            raise InvalidArgument("token", f"must be at most {tokens.MAX_TOKEN_LENGTH} characters")
        user_id = None
        if all_sessions:
            user_id = (await self._validator.validate(bearer or "")).user_id
        now = self._clock()
        session_id = await self._session_of(token) if token else None
        async with self._db.transaction() as conn:
            revoked: list[str] = []
            if session_id is not None:
                revoked += await session_rows.revoke(conn, [session_id], now, "revoked")
            if user_id is not None:
                revoked += await session_rows.revoke_all_of_user(conn, user_id, now,
                                                                 "revoked_all")
            for sid in revoked:
                owner = user_id or await session_rows.user_of_session(conn, sid)
                await events.record(conn, "session.revoked", now, user_id=owner,
                                    session_id=sid, **_audit(caller))
        self._revocations.add(revoked)

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
            return await session_rows.session_of_token(conn, refresh_tokens.token_hash(token))

    async def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        new_hash = await self._passwords.hash(password)
        async with self._db.connection() as conn:
            await user_rows.set_password_hash(conn, user_id, new_hash, self._clock(),
                                              only_if=old_hash)

    def _pair(self, user_id: str, session_id: str, scopes: tuple[str, ...], refresh: str,
              now: float, session_expires_at: float) -> TokenPair:
        settings = self._settings
        key = self._keystore.ring.signer(now)
        if key is None:
            raise Unavailable("no signing key")
        access, _ = tokens.issue(key, self._validator.rules, user_id=user_id,
                                 session_id=session_id, scopes=scopes, now=now,
                                 ttl=settings.access_token_ttl)
        refresh_ends = min(session_expires_at, now + settings.session_idle_ttl)
        return TokenPair(access_token=access, expires_in=settings.access_token_ttl,
                         refresh_token=refresh, refresh_expires_in=max(0, int(refresh_ends - now)),
                         session_id=session_id, user_id=user_id)


def _audit(caller: Caller) -> dict[str, str | None]:
    return {"client_addr": caller.client_addr, "user_agent": caller.user_agent}
