"""SignIn: identifier and password in, a new session and its token pair out.

The throttle is asked before any hash is spent; unknown users cost the same
hash as known ones (``Passwords.verify`` with no stored hash), and every
failure answers the same ``InvalidCredentials``.
"""

from __future__ import annotations

import logging

from ..clock import Clock
from ..config import Settings
from ..errors import InvalidArgument, InvalidCredentials, RateLimited
from ..store import events
from ..store import sessions as session_rows
from ..store import users as user_rows
from ..store.database import Database
from . import identifiers, refresh_tokens
from .caller import Caller
from .issuer import Issuer, TokenPair
from .passwords import Passwords
from .throttle import Throttle

log = logging.getLogger(__name__)


class SignIn:
    def __init__(self, db: Database, settings: Settings, clock: Clock, passwords: Passwords,
                 throttle: Throttle, issuer: Issuer) -> None:
        self._db = db
        self._session_ttl = settings.session_ttl
        self._clock = clock
        self._passwords = passwords
        self._throttle = throttle
        self._issuer = issuer

    async def sign_in(self, kind: str | None, raw_identifier: str, password: str,
                      caller: Caller) -> TokenPair:
        identifier = identifiers.normalize(identifiers.kind_of(kind), raw_identifier)
        if not password:
            raise InvalidArgument("password", "must not be empty")
        if len(password) > identifiers.MAX_PASSWORD:
            raise InvalidArgument("password",
                                  f"must be at most {identifiers.MAX_PASSWORD} characters")
        try:
            await self._throttle.check_sign_in(identifier, caller.client_addr)
        except RateLimited:
            async with self._db.connection() as conn:
                await events.record(conn, "signin.throttled", self._clock(), **caller.audit())
            raise
        async with self._db.connection() as conn:
            user = await user_rows.find(conn, identifier.kind, identifier.value)
        verdict = await self._passwords.verify(user.password_hash if user else None, password)
        now = self._clock()
        if user is None or not verdict.ok or user.disabled:
            reason = ("unknown_user" if user is None else
                      "wrong_password" if not verdict.ok else "disabled")
            await self._throttle.sign_in_failed(identifier, caller.client_addr)
            async with self._db.connection() as conn:
                await events.record(conn, "signin.failure", now, reason=reason,
                                    user_id=user.id if user else None, **caller.audit())
            raise InvalidCredentials()
        await self._throttle.sign_in_succeeded(identifier, caller.client_addr)
        if verdict.needs_rehash:
            await self._rehash(user.id, user.password_hash, password)
        refresh = refresh_tokens.new_token()
        async with self._db.transaction() as conn:
            session_id = await session_rows.create(
                conn, user_id=user.id, scopes=user.scopes, now=now, ttl=self._session_ttl,
                **caller.audit())
            await session_rows.insert_refresh_token(
                conn, session_id, refresh_tokens.token_hash(refresh), now)
            await events.record(conn, "signin.success", now, user_id=user.id,
                                session_id=session_id, **caller.audit())
        return self._issuer.pair(user_id=user.id, session_id=session_id, scopes=user.scopes,
                                 refresh=refresh, now=now,
                                 session_expires_at=now + self._session_ttl)

    async def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        new_hash = await self._passwords.hash(password)
        async with self._db.connection() as conn:
            await user_rows.set_password_hash(conn, user_id, new_hash, self._clock(),
                                              only_if=old_hash)
