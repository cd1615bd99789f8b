"""ChangePassword, RequestPasswordReset and ResetPassword.

- **Change** (bearer token, current and new password): the try reserves its
  throttle slot (per account, per address) before the current password is
  hashed; the new password goes through the rules of ``users add``; in one
  transaction the password is replaced (only while the credentials the
  check read still hold), every *other* session of the user is revoked, the
  caller's is kept, the change is audited and a "your password was changed"
  message is queued.
- **Request a reset** (identifier): always the same empty answer after the
  same work; if the identifier names an enabled account with an email or
  phone, a reset code goes there (voiding any earlier one). Otherwise the
  request still draws a code, computes its HMAC, seals its message and runs
  the same statement, which writes a settled outbox row instead (``Codes.send``):
  the same statements, outbox and audit rows, HMACs and encryptions either way,
  so neither the answer nor its cost tells which identifiers have accounts.
- **Reset** (identifier, code, new password): the code try reserves its
  slot, the new password is hashed, then in one transaction the code is
  spent, the password replaced, *every* session revoked, the address marked
  verified (the code proved it), and the change audited and announced. The
  person signs in again.
"""

from __future__ import annotations

from ...core.tokens import AccessClaims
from ...errors import (
    CodeExpired,
    CodeInvalid,
    InvalidArgument,
    InvalidCredentials,
)
from ...store import events
from ...store import sessions as session_rows
from ...store import users as user_rows
from ...store.database import Connection, Database
from ...store.users import UserRow
from ..caller import Caller
from ..delivery.messages import Messages
from ..sessions.revocation import Revocations, Revoking
from ..throttling.sends import Sends
from ..throttling.throttle import Throttle
from . import identifiers
from .codes import Codes
from .identifiers import Identifier
from .passwords import Passwords


def address_of(user: UserRow) -> Identifier | None:
    """Where messages to the user go: their email, else their phone."""
    if user.email:
        return Identifier("email", user.email)
    if user.phone:
        return Identifier("phone", user.phone)
    return None


def _own_identifier(user: UserRow) -> Identifier:
    return address_of(user) or Identifier("username", user.username or user.id)


class ChangePassword:
    def __init__(self, db: Database, passwords: Passwords, throttle: Throttle,
                 revocations: Revocations, messages: Messages) -> None:
        self._db = db
        self._passwords = passwords
        self._throttle = throttle
        self._revocations = revocations
        self._messages = messages

    async def change(self, claims: AccessClaims, current: str, new: str,
                     caller: Caller) -> None:
        """The caller's own password (claims verified at the door, with a fresh second
        factor when the user has one)."""
        if not current:
            raise InvalidArgument("current_password", "must not be empty")
        if len(current) > identifiers.MAX_PASSWORD:
            raise InvalidArgument("current_password",
                                  f"must be at most {identifiers.MAX_PASSWORD} characters")
        async with self._db.connection() as conn:
            user = await user_rows.get(conn, claims.user_id)
        if user is None or user.disabled:
            raise InvalidCredentials()
        identifiers.check_password(new, "new_password",
                                   names=(user.email, user.phone, user.username))
        policy = self._throttle.policy
        async with self._db.transaction() as conn:  # the try's slot before any hash
            reservation = await self._throttle.reserve_attempt(
                conn, "change", _own_identifier(user), caller.client_addr,
                identifier_tarpit=policy.pair, address_tarpit=policy.address)
        reservation.raise_if_refused()
        verdict = await self._passwords.verify(user.password_hash, current)
        if not verdict.ok:
            async with self._db.connection() as conn:
                await events.record(conn, "password.change_failed",
                                    user_id=user.id, session_id=claims.session_id,
                                    reason="wrong_password", **caller.audit())
            raise InvalidCredentials()
        new_hash = await self._passwords.hash(new)
        async with self._revocations.transaction() as change:
            changed = await user_rows.change_password_if(
                change.conn, user.id, user.credentials_version, new_hash)
            if changed:
                await self._throttle.released(change.conn, reservation)
                others = [s.id for s in await session_rows.list_for_user(change.conn, user.id)
                          if s.revoked_at is None and s.id != claims.session_id]
                await change.revoke(others, reason="password_changed", caller=caller)
                await events.record(change.conn, "user.password_changed",
                                    user_id=user.id, session_id=claims.session_id,
                                    reason="self_service", **caller.audit())
                await _announce(change.conn, self._messages, user)
        self._messages.written()
        if not changed:  # changed or disabled since it was read: try again
            raise InvalidCredentials()


class PasswordReset:
    def __init__(self, db: Database, passwords: Passwords, sends: Sends, codes: Codes,
                 messages: Messages) -> None:
        self._db = db
        self._passwords = passwords
        self._sends = sends
        self._codes = codes
        self._messages = messages

    async def request(self, kind: str | None, raw: str, caller: Caller) -> None:
        identifier = identifiers.normalize(identifiers.kind_of(kind), raw)
        await self._sends.reserve(identifier, caller)
        async with self._db.transaction() as conn:
            user = await user_rows.find(conn, identifier.kind, identifier.value)
            to = None if user is None or user.disabled else address_of(user)
            # Sent or not, the same work: see Codes.send.
            await self._codes.send(conn, user.id if user and to else None, "reset",
                                   self._messages, to)
            await events.record(conn, "password.reset_requested",
                                user_id=user.id if user else None,
                                reason=None if to else "nothing_sent", **caller.audit())
        self._messages.written()

    async def reset(self, kind: str | None, raw: str, code: str, new: str,
                    caller: Caller) -> None:
        identifier = identifiers.normalize(identifiers.kind_of(kind), raw)
        Codes.check_format(code)
        identifiers.check_password(new, "new_password", names=(identifier.value,))
        reservation = await self._codes.reserve_try(identifier, caller)
        new_hash = await self._passwords.hash(new)  # spent only after the slot is taken

        async def reset(change: Revoking, user: UserRow) -> None:
            await user_rows.set_password_hash(change.conn, user.id, new_hash, change.now)
            if identifier.kind != "username":
                await user_rows.mark_verified(change.conn, user.id, identifier.kind)
            await change.revoke(user_id=user.id, reason="password_reset", caller=caller)
            await events.record(change.conn, "user.password_changed",
                                user_id=user.id, reason="reset", **caller.audit())
            await _announce(change.conn, self._messages, user)

        try:
            await self._codes.redeem(identifier, "reset", code, reservation, reset)
        except (CodeInvalid, CodeExpired) as exc:
            async with self._db.connection() as conn:
                await events.record(conn, "password.reset_failed",
                                    reason=exc.reason.lower(), **caller.audit())
            raise
        finally:
            self._messages.written()


async def _announce(conn: Connection, messages: Messages, user: UserRow) -> None:
    to = address_of(user)
    if to is not None:
        await messages.send(conn, "password_changed", to)
