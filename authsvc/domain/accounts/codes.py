"""One-time codes that prove an email or phone (verification) or allow a
password reset.

A code is 8 digits (``AUTHSVC_CODE_FORMAT=digits``, for typing from an SMS or
mail) or a 43-character link token (``token``: 256 bits, for a link). Only an
HMAC-SHA256 of it is stored (key derived from the key-encryption key, bound to
the user and the purpose), so the table alone does not give a code away, not
even by trying all 10^8. One live code per user and purpose: a new code voids
the old. A code is good for ``AUTHSVC_CODE_TTL`` seconds (900) by the
database's clock, once, and for at most ``MAX_FAILURES`` wrong tries.

Sending a code is the same work whether or not there is an account to send it
to (``send`` with no user): a code is drawn, its HMAC computed, its message
sealed and the same statement run, which then writes an outbox row that is
already settled instead of a code and a message to deliver; so the cost of
"forgot password" or "resend" does not tell which identifiers have accounts
(the enumeration tests count statements, rows, HMACs and encryptions).

Every try reserves its throttle slot (per identifier, per client address, and
per pair) in PostgreSQL before the code is looked at, so guesses from many
workers or replicas run into the tarpit together; a right code gives the
slot back.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from ...errors import CodeExpired, CodeInvalid, InvalidArgument
from ...store import codes as code_rows
from ...store import users as user_rows
from ...store.database import Connection, Database
from ...store.throttles import Tarpit
from ...store.users import UserRow
from ..caller import Caller
from ..delivery.messages import Messages
from ..keycrypto import derive_key, mac
from ..sessions.revocation import Revocations, Revoking
from ..throttling.throttle import Reservation, Throttle
from .identifiers import Identifier

Purpose = Literal["verify", "reset"]
T = TypeVar("T")

MAX_FAILURES = 5
DIGITS = 8
_DIGITS = re.compile(r"[0-9]{8}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_CODE = 64


@dataclass(frozen=True, slots=True)
class CodePolicy:
    format: str  # "digits" or "token"
    ttl: int
    tries: Tarpit  # per identifier
    tries_by_address: Tarpit
    tries_by_pair: Tarpit


class Codes:
    def __init__(self, db: Database, revocations: Revocations, throttle: Throttle,
                 policy: CodePolicy, key_encryption_key: bytes) -> None:
        self._db = db
        self._revocations = revocations
        self._throttle = throttle
        self.policy = policy
        self._key = derive_key(key_encryption_key, b"authsvc account codes v1")

    def new(self) -> str:
        if self.policy.format == "token":
            return secrets.token_urlsafe(32)
        return f"{secrets.randbelow(10 ** DIGITS):0{DIGITS}d}"

    def draw(self, user_id: str, purpose: Purpose) -> tuple[str, bytes]:
        """A new code for ``user_id`` and ``purpose``, and the HMAC that is stored of it."""
        code = self.new()
        return code, self._digest(user_id, purpose, code)

    async def send(self, conn: Connection, user_id: str | None, purpose: Purpose,
                   messages: Messages, to: Identifier | None) -> None:
        """Issue a code and queue the ``purpose`` message carrying it to ``to``, in one
        statement of ``conn``'s transaction. ``user_id`` None (no account, or none to
        send to): the same work, and the statement writes no code and a settled outbox
        row that is never sent."""
        if user_id is None or to is None:
            user_id, to = None, _NOBODY
        code, digest = self.draw(user_id or _NO_USER, purpose)
        await code_rows.replace_and_send(
            conn, user_id, purpose, digest, self.policy.ttl,
            kind=purpose, channel=to.kind, recipient=to.value,
            payload=messages.seal(purpose, to.value, {"code": code}))

    @staticmethod
    def check_format(code: str) -> str:
        """Refuse what cannot be a code before anything is looked up or counted."""
        if not code:
            raise InvalidArgument("code", "must not be empty")
        if len(code) > MAX_CODE or not (_DIGITS.fullmatch(code) or _TOKEN.fullmatch(code)):
            raise InvalidArgument("code", "must be the 8 digits or the token that was sent")
        return code

    async def reserve_try(self, identifier: Identifier, caller: Caller) -> Reservation:
        """Take this try's throttle slot (its own transaction, committed whatever the
        try then finds); RateLimited when the tarpit holds."""
        async with self._db.transaction() as conn:
            reservation = await self._throttle.reserve_attempt(
                conn, "code", identifier, caller.client_addr,
                identifier_tarpit=self.policy.tries,
                address_tarpit=self.policy.tries_by_address,
                pair_tarpit=self.policy.tries_by_pair)
        reservation.raise_if_refused()
        return reservation

    async def redeem(self, identifier: Identifier, purpose: Purpose, code: str,
                     reservation: Reservation,
                     spend: Callable[[Revoking, UserRow], Awaitable[T]]) -> T:
        """Check ``code`` for the user ``identifier`` names. Right: ``spend`` runs in the
        transaction (one that may revoke sessions) that deletes the code and gives the
        throttle slot back, and its result is returned. Wrong (or no such user, a
        disabled one, no live code, too many tries): the failure is counted and
        CodeInvalid raised; right but expired: CodeExpired."""
        outcome: type[CodeInvalid] | type[CodeExpired] | None = CodeInvalid
        results: list[T] = []
        async with self._revocations.transaction() as change:
            conn = change.conn
            user = await user_rows.find(conn, identifier.kind, identifier.value)
            if user is not None and user.disabled:
                user = None
            row = None if user is None else await code_rows.lock(conn, user.id, purpose)
            if user is not None and row is not None and row.failures < MAX_FAILURES:
                right = hmac.compare_digest(row.code_hash,
                                            self._digest(user.id, purpose, code))
                if not right:
                    await code_rows.count_failure(conn, user.id, purpose)
                elif row.expired:
                    outcome = CodeExpired
                else:
                    await code_rows.spend(conn, user.id, purpose)
                    await self._throttle.released(conn, reservation)
                    results.append(await spend(change, user))
                    outcome = None
        if outcome is not None:
            raise outcome()
        return results[0]

    async def forget_expired(self) -> int:
        """Delete a batch of expired codes (housekeeping); how many."""
        async with self._db.connection() as conn:
            return await code_rows.forget_expired(conn)

    def _digest(self, user_id: str, purpose: str, code: str) -> bytes:
        return mac(self._key, f"{user_id}\x00{purpose}\x00{code}".encode())


# Where a decoy's sealed payload is addressed: no one (the row keeps no identifier of
# a person who may have no account here).
_NOBODY = Identifier("email", "")
_NO_USER = str(uuid.UUID(int=0))  # what a decoy's code is bound to: as long as a user id
