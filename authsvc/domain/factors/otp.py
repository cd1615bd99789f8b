"""Second factors: an authenticator app (TOTP) and recovery codes.

- **Enrolment** (bearer): ``enroll_totp`` stores a new secret, encrypted at
  rest under a key derived from the key-encryption key (AES-256-GCM, the user
  id as associated data), and answers it with its ``otpauth://`` URI;
  ``confirm_totp`` activates it with a first code and answers ten recovery
  codes, shown that once and stored only as HMACs.
- **Checking a code** (``check``, inside the caller's transaction): the
  attempt first takes its slot in the per-user tarpit (reserved before the
  code is looked at, ``Throttle.reserve_code``), then a TOTP code is compared
  for the database's time step ±1, and accepted only for a step later than the
  last one accepted (a conditional UPDATE: no replay, on any replica); a
  recovery code is spent by a conditional UPDATE. A success clears the tarpit.
- **Who may** change factors is the door's (``transport.door``): removing a
  factor or regenerating the recovery codes needs a fresh second factor in the
  caller's token, and so does adding one when the user already has one; the
  use cases here receive the verified claims. When a factor becomes active,
  every other enrolment of the user still pending ends with it (an unconfirmed
  secret, an unfinished passkey registration): one begun by a password-only
  session before the user's first factor cannot be finished after it.
  Recovery codes are (re)generated whenever a factor is added, and go with the
  last factor. An administrator's ``reset`` removes every factor and revokes
  every session of the user, audited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from ...clock import Clock
from ...core.tokens import AccessClaims
from ...errors import CodeInvalid, FactorConflict, InvalidArgument, NotFound
from ...store import events
from ...store import factors as factor_rows
from ...store import passkeys as passkey_rows
from ...store import users as user_rows
from ...store.database import Connection, Database
from ..accounts.identifiers import Identifier
from ..caller import NOBODY, Caller
from ..keycrypto import derive_key, seal, unseal
from ..sessions.revocation import Revocations
from ..throttling.throttle import Throttle
from . import totp
from .attempts import PASSKEY, RECOVERY_CODE, RECOVERY_LENGTH, TOTP, Attempt, totp_code

RECOVERY_CODES = 10


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str  # base32
    uri: str


class Factors:
    def __init__(self, db: Database, clock: Clock, throttle: Throttle,
                 revocations: Revocations, key_encryption_key: bytes, *, issuer: str) -> None:
        self._db = db
        self._clock = clock
        self._throttle = throttle
        self._revocations = revocations
        self._secret_key = derive_key(key_encryption_key, totp.SEALING_PURPOSE)
        self._code_key = derive_key(key_encryption_key, b"authsvc recovery codes v1")
        self._issuer = issuer

    # --- the caller's own factors (claims verified at the door) --------------

    async def enrolled(self, user_id: str) -> bool:
        """Whether the user has any second factor (the door's step-up question)."""
        async with self._db.connection() as conn:
            return (await factor_rows.summary(conn, user_id)).any

    async def enroll_totp(self, claims: AccessClaims, caller: Caller) -> Enrolment:
        secret = totp.new_secret()
        sealed = seal(self._secret_key, claims.user_id, secret)
        async with self._db.transaction() as conn:
            user = await user_rows.get(conn, claims.user_id)
            if user is None:
                raise NotFound()
            saved = await factor_rows.save_pending_totp(conn, claims.user_id, sealed)
            if saved:
                await events.record(conn, "factor.totp_enrolled", user_id=claims.user_id,
                                    session_id=claims.session_id, **caller.audit())
        if not saved:
            raise FactorConflict("An authenticator app is already active; remove it first.")
        account = user.email or user.username or user.phone or user.id
        return Enrolment(totp.base32(secret), totp.uri(secret, self._issuer, account))

    async def confirm_totp(self, claims: AccessClaims, code: str, caller: Caller,
                           ) -> list[str]:
        """Activate the pending secret with its first code; the recovery codes."""
        if not code:
            raise InvalidArgument("code", "must not be empty")
        presented = totp_code(code, "code")
        codes, hashes = self._new_recovery_codes(claims.user_id)
        async with self._db.transaction() as conn:
            wait = await self._throttle.reserve_code(conn, claims.user_id)
            if wait is None:
                row = await factor_rows.lock_totp(conn, claims.user_id, confirmed=False)
                if row is None:
                    outcome = "none"
                elif await self._accept_totp(conn, claims.user_id, row, presented):
                    outcome = "ok"
                    await self._throttle.code_succeeded(conn, claims.user_id)
                    await factor_rows.replace_recovery_codes(conn, claims.user_id, hashes)
                    await factor_rows.end_pending_enrolments(conn, claims.user_id)
                    await events.record(conn, "factor.totp_enabled", user_id=claims.user_id,
                                        session_id=claims.session_id, **caller.audit())
                else:
                    outcome = "wrong"
                    await events.record(conn, "factor.code_failure", reason="totp_confirm",
                                        user_id=claims.user_id, **caller.audit())
        self._throttle.raise_if_refused(wait)
        if outcome == "none":
            raise FactorConflict("No authenticator app is waiting for confirmation; "
                                 "call EnrollTotp first.")
        if outcome == "wrong":
            raise CodeInvalid()
        return codes

    async def remove_totp(self, claims: AccessClaims, caller: Caller) -> None:
        async with self._db.transaction() as conn:
            removed = await factor_rows.remove_totp(conn, claims.user_id)
            if not (await factor_rows.summary(conn, claims.user_id)).any:
                await factor_rows.remove_recovery_codes(conn, claims.user_id)
            if removed:
                await events.record(conn, "factor.totp_removed", user_id=claims.user_id,
                                    session_id=claims.session_id, **caller.audit())
        if not removed:
            raise FactorConflict("There is no authenticator app to remove.")

    async def regenerate_recovery_codes(self, claims: AccessClaims, caller: Caller,
                                        ) -> list[str]:
        codes, hashes = self._new_recovery_codes(claims.user_id)
        async with self._db.transaction() as conn:
            active = (await factor_rows.summary(conn, claims.user_id)).any
            if active:
                await factor_rows.replace_recovery_codes(conn, claims.user_id, hashes)
                await events.record(conn, "factor.recovery_codes_regenerated",
                                    user_id=claims.user_id, session_id=claims.session_id,
                                    **caller.audit())
        if not active:
            raise FactorConflict("Recovery codes back up a second factor; add one first.")
        return codes

    async def summary(self, claims: AccessClaims) -> factor_rows.Summary:
        async with self._db.connection() as conn:
            return await factor_rows.summary(conn, claims.user_id)

    async def replace_recovery_codes(self, conn: Connection, user_id: str) -> list[str]:
        """In the caller's transaction: ten new recovery codes, the old ones void."""
        codes, hashes = self._new_recovery_codes(user_id)
        await factor_rows.replace_recovery_codes(conn, user_id, hashes)
        return codes

    # --- administration ----------------------------------------------------

    async def reset(self, selector: Identifier | str) -> str:
        """Remove every factor of the user and revoke all their sessions (audited)."""
        async with self._revocations.transaction() as change:
            if isinstance(selector, Identifier):
                user = await user_rows.find(change.conn, selector.kind, selector.value)
            else:
                user = await user_rows.get(change.conn, selector)
            if user is None:
                raise NotFound()
            await factor_rows.remove_totp(change.conn, user.id)
            await factor_rows.remove_recovery_codes(change.conn, user.id)
            await passkey_rows.remove_all(change.conn, user.id)
            await events.record(change.conn, "factor.reset", user_id=user.id,
                                reason="by_admin")
            await change.revoke(user_id=user.id, reason="factors_reset", caller=NOBODY)
        return user.id

    # --- sign-in (inside the caller's transaction) ---------------------------

    async def available(self, conn: Connection, user_id: str) -> tuple[str, ...]:
        """The second factors the user can complete a sign-in with; () for none."""
        found = await factor_rows.summary(conn, user_id)
        if not found.any:
            return ()
        return tuple(name for name, present in ((TOTP, found.totp), (PASSKEY, found.passkeys),
                                                 (RECOVERY_CODE, found.recovery_codes))
                     if present)

    async def check(self, conn: Connection, user_id: str, attempt: Attempt,
                    ) -> tuple[str | None, float | None]:
        """Check a normalised attempt: (the amr value it proves, None) when it holds,
        (None, None) when it does not (counted in the tarpit), (None, seconds) when the
        tarpit refuses it (not counted, not checked)."""
        wait = await self._throttle.reserve_code(conn, user_id)
        if wait is not None:
            return None, wait
        ok = False
        if attempt.totp is not None:
            row = await factor_rows.lock_totp(conn, user_id, confirmed=True)
            ok = row is not None and await self._accept_totp(conn, user_id, row, attempt.totp)
        elif attempt.recovery_code is not None:
            ok = await factor_rows.use_recovery_code(
                conn, user_id, self._recovery_hash(user_id, attempt.recovery_code))
            if ok:
                await events.record(conn, "factor.recovery_code_used", user_id=user_id)
        if not ok:
            return None, None
        await self._throttle.code_succeeded(conn, user_id)
        return "otp", None

    async def _accept_totp(self, conn: Connection, user_id: str,
                           row: factor_rows.TotpRow, presented: str) -> bool:
        secret = unseal(self._secret_key, user_id, row.secret)
        step = totp.matching_step(secret, presented, row.step)
        if step is None:
            return False
        return await factor_rows.accept_step(conn, user_id, step)

    def _new_recovery_codes(self, user_id: str) -> tuple[list[str], list[bytes]]:
        codes = []
        for _ in range(RECOVERY_CODES):
            raw = base64.b32encode(os.urandom(7)).decode().lower()[:RECOVERY_LENGTH]
            codes.append(raw)
        return ([f"{c[:5]}-{c[5:]}" for c in codes],
                [self._recovery_hash(user_id, c) for c in codes])

    def _recovery_hash(self, user_id: str, code: str) -> bytes:
        return hmac.new(self._code_key, f"{user_id}\x00{code}".encode(), hashlib.sha256).digest()
