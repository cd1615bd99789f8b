"""Sign-in with a second factor: CompleteSignIn after MFA_REQUIRED.

When the password of a user with a second factor is right, SignIn creates no
session: ``Sessions.hold`` stores a challenge in the sign-in's transaction and
the answer is ``SecondFactorRequired``, which the transport sends as
UNAUTHENTICATED reason MFA_REQUIRED with the challenge's ``mfa_token`` (256
random bits; only its SHA-256 is stored) and the factors available.
``complete`` then takes the token and a code in one transaction: the
challenge's row lock (so two completions of one token queue, and the second
finds it spent), the code checked by ``Factors.check`` (tarpit first), and on
success the challenge spent, the user row re-checked (a password change or
disabling since the password was checked ends this sign-in) and the session
opened by ``Sessions`` with amr ``pwd`` + ``otp`` (or ``hwk``/``swk`` for a
passkey, ``domain.factors.passkeys``). A challenge lives
``AUTHSVC_MFA_TOKEN_TTL`` seconds by the database's clock and survives at
most ``MAX_ATTEMPTS`` wrong codes.
"""

from __future__ import annotations

from typing import Protocol

from ...errors import CodeInvalid, InvalidArgument, MfaTokenInvalid, PasskeyInvalid, RateLimited
from ...store.database import Connection
from ..caller import Caller
from ..sessions.opener import INVALID, WRONG, Failure, Opened, Refused, Sessions, challenge_hash
from ..sessions.storage import Storage
from ..tokens.issuer import TokenPair
from .attempts import Attempt, check_attempt

MAX_ATTEMPTS = 5
MAX_TOKEN_LENGTH = 128


class CodeChecks(Protocol):
    """``Factors``: a TOTP or recovery code of the user, in the caller's transaction."""

    async def check(self, conn: Connection, user_id: str, attempt: Attempt,
                    ) -> tuple[str | None, float | None]:
        """(the amr value proved, None), (None, None) when wrong (counted), or (None,
        seconds) when the user's tarpit refuses it (not checked)."""


class PasskeyChecks(Protocol):
    """``Passkeys``: an assertion presented as the second factor, in the caller's
    transaction; answers as ``CodeChecks.check``."""

    async def check(self, conn: Connection, user_id: str, mfa_hash: bytes,
                    ceremony_id: str, credential_json: str, caller: Caller,
                    ) -> tuple[str | None, float | None]: ...


class SecondFactorSignIn:
    def __init__(self, storage: Storage, sessions: Sessions, codes: CodeChecks,
                 passkeys: PasskeyChecks) -> None:
        self._db = storage.db
        self._users = storage.users
        self._challenges = storage.challenges
        self._events = storage.events
        self._sessions = sessions
        self._codes = codes
        self._passkeys = passkeys

    async def complete(self, mfa_token: str, attempt: Attempt, caller: Caller) -> TokenPair:
        if not mfa_token:
            raise InvalidArgument("mfa_token", "must not be empty")
        if len(mfa_token) > MAX_TOKEN_LENGTH:
            raise InvalidArgument("mfa_token", f"must be at most {MAX_TOKEN_LENGTH} characters")
        attempt = check_attempt(attempt)
        token_hash = challenge_hash(mfa_token)
        async with self._db.transaction() as conn:
            outcome = await self._complete(conn, token_hash, attempt, caller)
        if isinstance(outcome, Refused):
            raise _error(outcome, attempt)
        return await self._sessions.issue(outcome)

    async def _complete(self, conn: Connection, token_hash: bytes, attempt: Attempt,
                        caller: Caller) -> Opened | Refused:
        challenge = await self._challenges.lock_challenge(conn, token_hash, MAX_ATTEMPTS)
        if challenge is None:
            return INVALID
        user_id = challenge.user_id
        if attempt.passkey is not None:
            proved, wait = await self._passkeys.check(conn, user_id, token_hash,
                                                      *attempt.passkey, caller=caller)
        else:
            proved, wait = await self._codes.check(conn, user_id, attempt)
        if wait is not None:
            await self._events.record(conn, "signin.throttled", reason="second_factor",
                                      user_id=user_id, **caller.audit())
            return Refused.throttled(wait)
        if proved is None:
            await self._challenges.challenge_failed(conn, token_hash)
            await self._events.record(conn, "signin.failure", reason="wrong_code",
                                      user_id=user_id, **caller.audit())
            return WRONG
        await self._challenges.spend_challenge(conn, token_hash)
        scopes = await self._users.still_signing_in(conn, user_id,
                                                    challenge.credentials_version)
        if scopes is None:
            await self._events.record(conn, "signin.failure", reason="credentials_changed",
                                      user_id=user_id, **caller.audit())
            return INVALID
        return await self._sessions.open(conn, user_id=user_id, scopes=scopes,
                                         amr=(challenge.first_factor, proved), caller=caller,
                                         reason="second_factor")


def _error(refused: Refused, attempt: Attempt) -> Exception:
    match refused.failure:
        case Failure.THROTTLED:
            return RateLimited(refused.retry_after)
        case Failure.WRONG:
            return PasskeyInvalid() if attempt.passkey is not None else CodeInvalid()
        case Failure.INVALID:
            return MfaTokenInvalid()
