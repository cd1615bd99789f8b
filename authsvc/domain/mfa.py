"""Sign-in with a second factor: the MFA_REQUIRED challenge and CompleteSignIn.

When the password of a user with a second factor is right, SignIn creates no
session: it stores a challenge (``open``, in its own transaction) and answers
UNAUTHENTICATED reason MFA_REQUIRED with the challenge's ``mfa_token`` (256
random bits; only its SHA-256 is stored) and the factors available.
``complete`` then takes the token and a code in one transaction: the
challenge's row lock (so two completions of one token queue, and the second
finds it spent), the code checked by ``Factors.check`` (tarpit first), and on
success the challenge spent, the user row re-checked (a password change or
disabling since the password was checked ends this sign-in) and the session
created with amr ``pwd`` + ``otp`` (or ``hwk``/``swk`` for a passkey,
``domain.passkeys``). A challenge lives
``AUTHSVC_MFA_TOKEN_TTL`` seconds by the database's clock and survives at
most ``MAX_ATTEMPTS`` wrong codes.
"""

from __future__ import annotations

import base64
import hashlib
import os

from ..clock import Clock
from ..errors import CodeInvalid, InvalidArgument, MfaTokenInvalid, PasskeyInvalid, RateLimited
from ..store import events
from ..store import factors as factor_rows
from ..store import sessions as session_rows
from ..store import users as user_rows
from ..store.database import Connection, Database
from .caller import Caller
from .factors import Attempt, Factors, check_attempt
from .issuer import Issuer, TokenPair
from .passkeys import Passkeys
from .refresh_tokens import RefreshTokens

MAX_ATTEMPTS = 5
MAX_TOKEN_LENGTH = 128


def _hash(mfa_token: str) -> bytes:
    return hashlib.sha256(mfa_token.encode()).digest()


class SecondFactorSignIn:
    def __init__(self, db: Database, clock: Clock, factors: Factors, passkeys: Passkeys,
                 issuer: Issuer, tokens: RefreshTokens, *, token_ttl: int,
                 session_ttl: int) -> None:
        self._db = db
        self._passkeys = passkeys
        self._clock = clock
        self._factors = factors
        self._issuer = issuer
        self._tokens = tokens
        self.token_ttl = token_ttl
        self._session_ttl = session_ttl

    async def open(self, conn: Connection, user_id: str, credentials_version: int) -> str:
        """In the sign-in's transaction: a new challenge; its mfa_token."""
        mfa_token = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        await factor_rows.create_challenge(conn, _hash(mfa_token), user_id,
                                           credentials_version, self.token_ttl)
        return mfa_token

    async def complete(self, mfa_token: str, attempt: Attempt, caller: Caller) -> TokenPair:
        if not mfa_token:
            raise InvalidArgument("mfa_token", "must not be empty")
        if len(mfa_token) > MAX_TOKEN_LENGTH:
            raise InvalidArgument("mfa_token", f"must be at most {MAX_TOKEN_LENGTH} characters")
        attempt = check_attempt(attempt)
        token_hash = _hash(mfa_token)
        outcome, wait, user_id, session_id = "invalid", None, "", ""
        amr: tuple[str, ...] = ("pwd",)
        scopes: tuple[str, ...] | None = None
        async with self._db.transaction() as conn:
            challenge = await factor_rows.lock_challenge(conn, token_hash, MAX_ATTEMPTS)
            if challenge is not None:
                user_id = challenge.user_id
                if attempt.passkey is not None:
                    proved, wait = await self._passkeys.check(
                        conn, user_id, token_hash, *attempt.passkey, caller=caller)
                else:
                    proved, wait = await self._factors.check(conn, user_id, attempt)
                if wait is not None:
                    outcome = "throttled"
                    await events.record(conn, "signin.throttled", reason="second_factor",
                                        user_id=user_id, **caller.audit())
                elif proved is None:
                    outcome = "wrong"
                    await factor_rows.challenge_failed(conn, token_hash)
                    await events.record(conn, "signin.failure", reason="wrong_code",
                                        user_id=user_id, **caller.audit())
                else:
                    await factor_rows.spend_challenge(conn, token_hash)
                    scopes = await user_rows.still_signing_in(conn, user_id,
                                                              challenge.credentials_version)
                    if scopes is None:
                        await events.record(conn, "signin.failure",
                                            reason="credentials_changed", user_id=user_id,
                                            **caller.audit())
                    else:
                        outcome, amr = "ok", ("pwd", proved)
                        session_id = await session_rows.create(
                            conn, user_id=user_id, scopes=scopes, ttl=self._session_ttl,
                            amr=amr, **caller.audit())
                        await events.record(conn, "signin.success", reason="second_factor",
                                            user_id=user_id, session_id=session_id,
                                            **caller.audit())
        if outcome == "throttled":
            assert wait is not None
            raise RateLimited(wait)
        if outcome == "wrong":
            raise PasskeyInvalid() if attempt.passkey is not None else CodeInvalid()
        if outcome != "ok" or scopes is None:
            raise MfaTokenInvalid()
        now = self._clock()
        return self._issuer.pair(user_id=user_id, session_id=session_id, scopes=scopes,
                                 refresh=self._tokens.token(session_id, 0), now=now,
                                 session_expires_at=now + self._session_ttl, amr=amr,
                                 auth_time=now)
