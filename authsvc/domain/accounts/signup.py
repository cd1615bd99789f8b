"""SignUp, VerifyIdentifier and ResendVerification: accounts people create.

``AUTHSVC_SIGNUP``:

- ``off`` (default): SignUp is refused (PERMISSION_DENIED, SIGNUP_DISABLED);
  only operators create accounts.
- ``open``: the account is usable at once and SignUp answers like SignIn.
  An account usable at once cannot hide that an identifier is taken: SignUp
  of a taken identifier answers ALREADY_EXISTS. Choose ``verify`` where
  that matters.
- ``verify``: the account is created unverified and a code is sent to the
  email or phone; SignIn refuses it (IDENTIFIER_NOT_VERIFIED, told only to
  someone who knows the password) until VerifyIdentifier. A taken
  identifier gets the same empty answer after the same work (one argon2
  hash, the same statements, HMAC and encryptions, one outbox and one audit
  row), and its owner a "someone tried to sign up with your address" message
  instead of a code. A username alone proves no address, so it is refused in
  this mode.

Every message is an outbox row written in the transaction of the change, so
a sign-up that rolls back sends nothing. Sending is throttled per identifier
and per client address (``throttling.sends``), before any hash is computed.
"""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from ...errors import AlreadyExists, CodeExpired, CodeInvalid, InvalidArgument, SignUpDisabled
from ...store import codes as code_rows
from ...store import events
from ...store import users as user_rows
from ...store.database import Database
from ...store.users import UserRow
from ..caller import Caller
from ..delivery.messages import Messages
from ..sessions.opener import SecondFactorRequired, SignedIn
from ..sessions.revocation import Revoking
from ..throttling.sends import Sends
from . import identifiers
from .codes import Codes
from .identifiers import Identifier
from .passwords import Passwords

log = logging.getLogger(__name__)


class SignsIn(Protocol):
    """``SignIn``: open mode answers a new account's sign-up as its sign-in."""

    async def sign_in(self, kind: str | None, raw_identifier: str, password: str,
                      caller: Caller) -> SignedIn | SecondFactorRequired: ...


class SignUp:
    def __init__(self, db: Database, mode: str, passwords: Passwords, sends: Sends,
                 codes: Codes, messages: Messages, sign_in: SignsIn) -> None:
        self._db = db
        self.mode = mode
        self._passwords = passwords
        self._sends = sends
        self._codes = codes
        self._messages = messages
        self._sign_in = sign_in

    async def sign_up(self, kind: str | None, raw: str, password: str,
                      caller: Caller) -> SignedIn | SecondFactorRequired | None:
        """Create the account: open mode signs it in (as ``SignIn`` answers); verify
        mode answers None."""
        if self.mode == "off":
            raise SignUpDisabled()
        identifier = identifiers.normalize(identifiers.kind_of(kind), raw)
        if self.mode == "verify" and identifier.kind == "username":
            raise InvalidArgument("username", "sign-up needs an email or phone number to "
                                  "verify; a username alone is not accepted")
        identifiers.check_password(password, names=(identifier.value,))
        await self._sends.reserve(identifier, caller)
        # Hashed whether or not the identifier is taken: the same work, the same time.
        password_hash = await self._passwords.hash(password)
        if self.mode == "verify":
            await self._sign_up_unverified(identifier, password_hash, caller)
            return None
        async with self._db.transaction() as conn:
            user_id = await user_rows.insert_signup(conn, identifier.kind, identifier.value,
                                                    password_hash, verified=True)
            if user_id is None:
                owner = await user_rows.find(conn, identifier.kind, identifier.value)
                await events.record(conn, "signup.taken",
                                    user_id=owner.id if owner else None, **caller.audit())
            else:
                await events.record(conn, "user.created", user_id=user_id,
                                    reason="signup.open", **caller.audit())
        if user_id is None:
            raise AlreadyExists(identifier.kind)
        return await self._sign_in.sign_in(identifier.kind, identifier.value, password, caller)

    async def _sign_up_unverified(self, identifier: Identifier, password_hash: str,
                                  caller: Caller) -> None:
        """Verify mode: one statement creates the account with its code and message, or
        (taken) queues the owner's "someone tried to sign up" message; both ways the
        same statements, the same code drawn and HMAC computed (for the id the account
        would get), the same two messages sealed, and one outbox and one audit row."""
        user_id = str(uuid.uuid4())
        code, code_hash = self._codes.draw(user_id, "verify")
        to = identifier.value
        async with self._db.transaction() as conn:
            outcome = await code_rows.sign_up_and_send(
                conn, identifier.kind, to, user_id, password_hash, code_hash,
                self._codes.policy.ttl, channel=identifier.kind,
                verify_payload=self._messages.seal("verify", to, {"code": code}),
                taken_payload=self._messages.seal("already_registered", to, {}))
            if outcome.created is not None:
                await events.record(conn, "user.created", user_id=outcome.created,
                                    reason="signup.verify", **caller.audit())
            else:
                await events.record(conn, "signup.taken", user_id=outcome.owner,
                                    **caller.audit())
        self._messages.written()


class Verification:
    """VerifyIdentifier and ResendVerification."""

    def __init__(self, db: Database, sends: Sends, codes: Codes, messages: Messages) -> None:
        self._db = db
        self._sends = sends
        self._codes = codes
        self._messages = messages

    async def verify(self, kind: str | None, raw: str, code: str, caller: Caller) -> None:
        identifier = _address(kind, raw)
        Codes.check_format(code)
        reservation = await self._codes.reserve_try(identifier, caller)

        async def verified(change: Revoking, user: UserRow) -> None:
            await user_rows.mark_verified(change.conn, user.id, identifier.kind)
            await events.record(change.conn, "verification.succeeded",
                                user_id=user.id, **caller.audit())

        try:
            await self._codes.redeem(identifier, "verify", code, reservation, verified)
        except (CodeInvalid, CodeExpired) as exc:
            async with self._db.connection() as conn:
                await events.record(conn, "verification.failed",
                                    reason=exc.reason.lower(), **caller.audit())
            raise

    async def resend(self, kind: str | None, raw: str, caller: Caller) -> None:
        """A new code (voiding the old) if the identifier names an unverified account;
        always the same empty answer."""
        identifier = _address(kind, raw)
        await self._sends.reserve(identifier, caller)
        async with self._db.transaction() as conn:
            user = await user_rows.find(conn, identifier.kind, identifier.value)
            due = user is not None and not user.verified and not user.disabled
            # Sent or not, the same work: see Codes.send.
            await self._codes.send(conn, user.id if user and due else None, "verify",
                                   self._messages, identifier)
            await events.record(conn, "verification.requested",
                                user_id=user.id if user else None,
                                reason=None if due else "nothing_sent", **caller.audit())
        self._messages.written()


def _address(kind: str | None, raw: str) -> Identifier:
    if kind not in ("email", "phone"):
        raise InvalidArgument("identifier", "one of email or phone is required")
    return identifiers.normalize(identifiers.kind_of(kind), raw)
