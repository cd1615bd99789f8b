"""SignIn: identifier and password in, a new session and its token pair out.

Two transactions: the first takes the attempt's throttle slot (or refuses)
and reads the user, before any hash is spent; the second re-checks the user
row under a share lock and writes the throttle release, the session and the
audit row together (the refresh token is the session's counter 0, computed,
not stored). Unknown users cost the same hash as known ones
(``Passwords.verify`` with no stored hash), and every failure answers the
same ``InvalidCredentials``.

The outcome of the hash decides the throttle slot, not whether the answer was
delivered: once the slot is taken, the rest of the sign-in (the hash, then the
session's transaction) runs to its end even when the client cancels the call
(an impatient app, a proxy's deadline, a load generator stopping). A right
password gives the slot back and opens the session (which then simply goes
unused, as after an answer lost on the network); a wrong one stays a failure.
So cancelled sign-ins are never counted as guesses, and cancelling cannot buy
a free guess either.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..clock import Clock
from ..config import Settings
from ..errors import IdentifierNotVerified, InvalidArgument, InvalidCredentials, MfaRequired
from ..store import events
from ..store import sessions as session_rows
from ..store import users as user_rows
from ..store.database import Database
from ..store.users import UserRow
from . import identifiers
from .caller import Caller
from .devices import DeviceTokens
from .factors import Factors
from .issuer import Issuer, TokenPair
from .mfa import SecondFactorSignIn
from .passwords import Passwords
from .refresh_tokens import RefreshTokens
from .throttle import Reservation, Throttle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignedIn:
    tokens: TokenPair
    device_token: str


class SignIn:
    def __init__(self, db: Database, settings: Settings, clock: Clock, passwords: Passwords,
                 throttle: Throttle, devices: DeviceTokens, issuer: Issuer,
                 tokens: RefreshTokens, factors: Factors | None = None,
                 second_factor: SecondFactorSignIn | None = None) -> None:
        self._db = db
        self._factors = factors
        self._second_factor = second_factor
        self._tokens = tokens
        self._devices = devices
        self._session_ttl = settings.session_ttl
        self._clock = clock
        self._passwords = passwords
        self._throttle = throttle
        self._issuer = issuer
        self._judging: set[asyncio.Task[SignedIn]] = set()

    async def sign_in(self, kind: str | None, raw_identifier: str, password: str,
                      caller: Caller, device_token: str = "") -> SignedIn:
        identifier = identifiers.normalize(identifiers.kind_of(kind), raw_identifier)
        if not password:
            raise InvalidArgument("password", "must not be empty")
        if len(password) > identifiers.MAX_PASSWORD:
            raise InvalidArgument("password",
                                  f"must be at most {identifiers.MAX_PASSWORD} characters")
        device = self._devices.device_of(device_token, identifier)
        user: UserRow | None = None
        async with self._db.transaction() as conn:  # the attempt's slot, then the user
            reservation = await self._throttle.reserve_sign_in(conn, identifier,
                                                               caller.client_addr, device)
            if reservation.retry_after is not None:
                if reservation.worth_auditing:
                    await events.record(conn, "signin.throttled",
                                        reason=f"refused {reservation.refusals}",
                                        **caller.audit())
            else:
                user = await user_rows.find(conn, identifier.kind, identifier.value)
        reservation.raise_if_refused()
        judging = asyncio.create_task(self._judge(identifier, user, password, reservation,
                                                  caller))
        self._judging.add(judging)  # a cancelled call does not cancel the judgement
        judging.add_done_callback(self._judged)
        return await asyncio.shield(judging)

    def _judged(self, task: asyncio.Task[SignedIn]) -> None:
        self._judging.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a refusal nobody waited for is not an error

    async def _judge(self, identifier: identifiers.Identifier, user: UserRow | None,
                     password: str, reservation: Reservation, caller: Caller) -> SignedIn:
        """The hash, then the session's transaction: the slot's fate and the answer."""
        verdict = await self._passwords.verify(user.password_hash if user else None, password)
        now = self._clock()
        if user is None or not verdict.ok or user.disabled:
            reason = ("unknown_user" if user is None else
                      "wrong_password" if not verdict.ok else "disabled")
            async with self._db.connection() as conn:
                await events.record(conn, "signin.failure", reason=reason,
                                    user_id=user.id if user else None, **caller.audit())
            raise InvalidCredentials()
        if not user.verified:  # a verify-mode sign-up; said only to who knows the password
            async with self._db.connection() as conn:
                await events.record(conn, "signin.failure", reason="unverified",
                                    user_id=user.id, **caller.audit())
            raise IdentifierNotVerified()
        session_id = None
        factors: tuple[str, ...] = ()
        async with self._db.transaction() as conn:
            # The session is created only for the credentials just checked: a password
            # change or disabling since then ends this sign-in here, and one that comes
            # later waits for this transaction and then revokes its session.
            scopes = await user_rows.still_signing_in(conn, user.id, user.credentials_version)
            if scopes is None:
                await events.record(conn, "signin.failure", reason="credentials_changed",
                                    user_id=user.id, **caller.audit())
            else:
                await self._throttle.sign_in_succeeded(conn, reservation)
                if self._factors is not None and self._second_factor is not None:
                    factors = await self._factors.available(conn, user.id)
                if factors:  # the password was right; the session waits for the factor
                    assert self._second_factor is not None
                    mfa_token = await self._second_factor.open(conn, user.id,
                                                               user.credentials_version)
                    await events.record(conn, "signin.mfa_required", user_id=user.id,
                                        **caller.audit())
                else:
                    session_id = await session_rows.create(
                        conn, user_id=user.id, scopes=scopes, ttl=self._session_ttl,
                        **caller.audit())
                    await events.record(conn, "signin.success", user_id=user.id,
                                        session_id=session_id, **caller.audit())
        if verdict.needs_rehash and scopes is not None:
            await self._rehash(user.id, user.password_hash, password)
        if factors:
            assert self._second_factor is not None
            raise MfaRequired(mfa_token, factors, self._second_factor.token_ttl)
        if scopes is None or session_id is None:
            raise InvalidCredentials()
        pair = self._issuer.pair(user_id=user.id, session_id=session_id, scopes=scopes,
                                 refresh=self._tokens.token(session_id, 0), now=now,
                                 session_expires_at=now + self._session_ttl)
        return SignedIn(pair, self._devices.issue(identifier))

    async def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        new_hash = await self._passwords.hash(password)
        async with self._db.connection() as conn:
            await user_rows.rehash(conn, user_id, old_hash, new_hash, self._clock())
