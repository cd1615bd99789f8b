"""SignIn: identifier and password in, a new session and its token pair out.

Two transactions: the first, one statement, takes the attempt's throttle slot
(or refuses) and reads the user, before any hash is spent; the second re-checks the user
row under a share lock and writes the throttle release, the session and the
audit row together (the refresh token is the session's counter 0, computed,
not stored). Unknown users cost the same hash as known ones
(``Passwords.verify`` with no stored hash), and every failure answers the
same ``InvalidCredentials``.

A password imported from another system (a foreign hash) is replaced by
authsvc's argon2id in the second transaction, before its share lock, with a
conditional UPDATE: a racing sign-in of the same user finds it done and goes on.

The outcome of the hash decides the throttle slot, not whether the answer was
delivered: once the slot is taken, the rest of the sign-in (the hash, then the
session's transaction) runs to its end even when the client cancels the call
(an impatient app, a proxy's deadline, a load generator stopping). A right
password gives the slot back and opens the session (which then simply goes
unused, as after an answer lost on the network); a wrong one stays a failure.
So cancelled sign-ins are never counted as guesses, and cancelling cannot buy
a free guess either.

The answer is ``SignedIn`` (a session, opened by ``Sessions`` like every other
way of signing in) or ``SecondFactorRequired`` (the password was right and the
user has a second factor: the transport answers MFA_REQUIRED). Why a sign-in
failed is a ``Refusal``, which is also the audit row's reason.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import NoReturn, Protocol

from ...clock import Clock
from ...errors import IdentifierNotVerified, InvalidArgument, InvalidCredentials
from ...store.database import Connection
from ...store.users import UserRow
from ..accounts import identifiers
from ..accounts.passwords import Passwords, Verdict
from ..caller import Caller
from ..throttling.throttle import Reservation, Throttle
from .devices import DeviceTokens
from .opener import Opened, SecondFactorRequired, Sessions, SignedIn
from .storage import Storage

log = logging.getLogger(__name__)


class Refusal(StrEnum):
    """Why a right-looking sign-in opened nothing; the ``signin.failure`` reason."""

    UNKNOWN_USER = "unknown_user"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 (an audit reason, not a password)
    DISABLED = "disabled"
    UNVERIFIED = "unverified"  # said only to who knows the password
    CREDENTIALS_CHANGED = "credentials_changed"  # since the password was checked


class AvailableFactors(Protocol):
    async def available(self, conn: Connection, user_id: str) -> tuple[str, ...]:
        """The second factors the user can complete a sign-in with; () for none."""


class SignIn:
    def __init__(self, storage: Storage, clock: Clock, passwords: Passwords,
                 throttle: Throttle, devices: DeviceTokens, sessions: Sessions,
                 factors: AvailableFactors) -> None:
        self._storage = storage
        self._db = storage.db
        self._users = storage.users
        self._events = storage.events
        self._factors = factors
        self._sessions = sessions
        self._devices = devices
        self._clock = clock
        self._passwords = passwords
        self._throttle = throttle
        self._judging: set[asyncio.Task[SignedIn | SecondFactorRequired]] = set()

    async def sign_in(self, kind: str | None, raw_identifier: str, password: str,
                      caller: Caller, device_token: str = "",
                      ) -> SignedIn | SecondFactorRequired:
        identifier = identifiers.normalize(identifiers.kind_of(kind), raw_identifier)
        if not password:
            raise InvalidArgument("password", "must not be empty")
        if len(password) > identifiers.MAX_PASSWORD:
            raise InvalidArgument("password",
                                  f"must be at most {identifiers.MAX_PASSWORD} characters")
        device = self._devices.device_of(device_token, identifier)
        async with self._db.connection() as conn:  # one statement: the slot, the user
            reservation, user = await self._throttle.reserve_sign_in(
                conn, identifier, caller.client_addr, device)
            if reservation.retry_after is not None and reservation.worth_auditing:
                await self._events.record(conn, "signin.throttled",
                                          reason=f"refused {reservation.refusals}",
                                          **caller.audit())
        reservation.raise_if_refused()
        judging = asyncio.create_task(self._judge(identifier, user, password, reservation,
                                                  caller))
        self._judging.add(judging)  # a cancelled call does not cancel the judgement
        judging.add_done_callback(self._judged)
        return await asyncio.shield(judging)

    def _judged(self, task: asyncio.Task[SignedIn | SecondFactorRequired]) -> None:
        self._judging.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a refusal nobody waited for is not an error

    async def _judge(self, identifier: identifiers.Identifier, user: UserRow | None,
                     password: str, reservation: Reservation, caller: Caller,
                     ) -> SignedIn | SecondFactorRequired:
        """The hash, then the session's transaction: the slot's fate and the answer."""
        verdict = await self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not verdict.ok or user.disabled or not user.verified:
            await self._refuse(_refusal(user, verdict), user, caller)
        async with self._db.transaction() as conn:
            if verdict.upgrade is not None and user.password_hash is not None:
                # An imported hash: authsvc's from now on. First, so its row lock comes
                # before the share lock below (two racing upgrades queue here; the
                # second finds the hash replaced: a no-op).
                await self._users.upgrade_hash(conn, user.id, user.credentials_version,
                                               user.password_hash, verdict.upgrade)
            # The session is created only for the credentials just checked: a password
            # change or disabling since then ends this sign-in here, and one that comes
            # later waits for this transaction and then revokes its session.
            scopes = await self._users.still_signing_in(conn, user.id,
                                                        user.credentials_version)
            if scopes is None:
                await self._events.record(conn, "signin.failure",
                                          reason=Refusal.CREDENTIALS_CHANGED.value,
                                          user_id=user.id, **caller.audit())
                opened: Opened | SecondFactorRequired | None = None
            else:
                await self._throttle.sign_in_succeeded(conn, reservation)
                opened = await self._open(conn, user, scopes, caller)
        if verdict.needs_rehash and opened is not None and user.password_hash is not None:
            await self._rehash(user.id, user.password_hash, password)
        match opened:
            case None:
                raise InvalidCredentials()
            case SecondFactorRequired():
                return opened
            case Opened():
                return SignedIn(await self._sessions.issue(opened),
                                self._devices.issue(identifier))

    async def _open(self, conn: Connection, user: UserRow, scopes: tuple[str, ...],
                    caller: Caller) -> Opened | SecondFactorRequired:
        """The password was right: the session, or (with a second factor) the challenge
        that waits for it."""
        factors = await self._factors.available(conn, user.id)
        if factors:
            return await self._sessions.hold(conn, user_id=user.id,
                                             credentials_version=user.credentials_version,
                                             factors=factors, caller=caller)
        return await self._sessions.open(conn, user_id=user.id, scopes=scopes, amr=("pwd",),
                                         caller=caller)

    async def _refuse(self, refusal: Refusal, user: UserRow | None, caller: Caller,
                      ) -> NoReturn:
        async with self._db.connection() as conn:
            await self._events.record(conn, "signin.failure", reason=refusal.value,
                                      user_id=user.id if user else None, **caller.audit())
        if refusal is Refusal.UNVERIFIED:
            raise IdentifierNotVerified()
        raise InvalidCredentials()

    async def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        new_hash = await self._passwords.hash(password)
        async with self._db.connection() as conn:
            await self._users.rehash(conn, user_id, old_hash, new_hash, self._clock())


def _refusal(user: UserRow | None, verdict: Verdict) -> Refusal:
    """Why the password does not open this account (the checks' order is the audit's)."""
    if user is None:
        return Refusal.UNKNOWN_USER
    if not verdict.ok:
        return Refusal.WRONG_PASSWORD
    if user.disabled:
        return Refusal.DISABLED
    return Refusal.UNVERIFIED
