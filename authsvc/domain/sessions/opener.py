"""Opening sessions: the one way every sign-in ends (password, second factor,
passkey), and the token pairs a session answers with.

Modelled on supabase/auth's ``internal/tokens/service.go``, where each grant
ends in ``IssueRefreshToken``: a flow decides *who* signed in and *how*
(``amr``), and ``Sessions`` does the rest the same way for all of them.

- ``open``, in the flow's transaction: the session row (refresh counter 0,
  its times by the database's clock) and its ``signin.success`` audit row, so
  a session never exists without its trail.
- ``hold``, instead, when the password was right but the user has a second
  factor: a sign-in challenge (only the SHA-256 of its ``mfa_token`` is
  stored) and its ``signin.mfa_required`` row; the answer is
  ``SecondFactorRequired``, which the transport turns into UNAUTHENTICATED
  reason MFA_REQUIRED. Not an exception: it is one of sign-in's two answers.
- ``issue``, after the transaction committed: the session's first token pair
  (a pair signed before the commit could outlive a rolled-back session).
  ``reissue`` is the same for a refresh. With AUTHSVC_ACCESS_TOKEN_PROFILE
  (``profiles``), each reads the user's profile into the access token: one
  more statement per sign-in and refresh, and only then (``tokens.profiles``
  says why it is off by default).

A flow that refuses says why with ``Refused`` (an enum ``Failure`` and, when
throttled, the wait), never with a string.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from ...clock import Clock
from ...core.tokens import Profile
from ...store.database import Connection
from ...store.sessions import Refreshed
from ..caller import Caller
from ..tokens.issuer import Issuer, TokenPair
from .refresh_tokens import RefreshTokens
from .storage import Storage


def challenge_hash(mfa_token: str) -> bytes:
    """How a sign-in challenge is stored and looked up."""
    return hashlib.sha256(mfa_token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Opened:
    """A session just created (not yet committed): what its first token pair needs."""

    user_id: str
    session_id: str
    scopes: tuple[str, ...]
    amr: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A password sign-in that opened its session: the token pair, and the device
    token that lets this device past the identifier's throttle next time."""

    tokens: TokenPair
    device_token: str


@dataclass(frozen=True, slots=True)
class SecondFactorRequired:
    """The password was right; the sign-in completes with ``CompleteSignIn`` and the
    ``mfa_token`` within ``expires_in`` seconds, by one of ``factors``."""

    mfa_token: str
    factors: tuple[str, ...]
    expires_in: int


class Failure(Enum):
    """Why a sign-in step opened no session."""

    INVALID = "invalid"  # no such live challenge or ceremony, or credentials changed
    WRONG = "wrong"  # the code or passkey presented did not hold (counted)
    THROTTLED = "throttled"  # the tarpit refused before anything was checked


@dataclass(frozen=True, slots=True)
class Refused:
    failure: Failure
    retry_after: float = 0.0  # THROTTLED: seconds until the tarpit lets it through

    @classmethod
    def throttled(cls, retry_after: float) -> Refused:
        return cls(Failure.THROTTLED, retry_after)


INVALID = Refused(Failure.INVALID)
WRONG = Refused(Failure.WRONG)


class Sessions:
    """Opens sessions and mints their token pairs, for every way of signing in."""

    def __init__(self, storage: Storage, issuer: Issuer, tokens: RefreshTokens,
                 clock: Clock, *, session_ttl: int, mfa_token_ttl: int,
                 profiles: Callable[[str], Awaitable[Profile]] | None = None) -> None:
        """``profiles``: where access tokens' profiles are read (None: tokens carry
        none)."""
        self._sessions = storage.sessions
        self._challenges = storage.challenges
        self._events = storage.events
        self._issuer = issuer
        self._tokens = tokens
        self._clock = clock
        self._session_ttl = session_ttl
        self.mfa_token_ttl = mfa_token_ttl
        self._profiles = profiles

    async def open(self, conn: Connection, *, user_id: str, scopes: tuple[str, ...],
                   amr: tuple[str, ...], caller: Caller, reason: str | None = None,
                   ) -> Opened:
        """In the flow's transaction: a session for ``user_id``, who authenticated just
        now by ``amr``; ``reason`` says how on the audit row (None: a password)."""
        session_id = await self._sessions.create(conn, user_id=user_id, scopes=scopes,
                                                 ttl=self._session_ttl, amr=amr,
                                                 recorded=("signin.success", reason),
                                                 **caller.audit())
        return Opened(user_id, session_id, scopes, amr)

    async def hold(self, conn: Connection, *, user_id: str, credentials_version: int,
                   factors: tuple[str, ...], caller: Caller, first_factor: str = "pwd",
                   ) -> SecondFactorRequired:
        """In the flow's transaction: no session yet, a challenge for the second factor
        (it dies with the credentials read at ``credentials_version``); ``first_factor``
        is the amr of what was proven already (a password, or ``fed``)."""
        mfa_token = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        await self._challenges.create_challenge(conn, challenge_hash(mfa_token), user_id,
                                                credentials_version, self.mfa_token_ttl,
                                                first_factor)
        await self._events.record(conn, "signin.mfa_required", user_id=user_id,
                                  **caller.audit())
        return SecondFactorRequired(mfa_token, factors, self.mfa_token_ttl)

    async def issue(self, opened: Opened) -> TokenPair:
        """After the commit: the new session's first pair (refresh counter 0)."""
        profile = await self._profile(opened.user_id)
        now = self._clock()
        return self._issuer.pair(user_id=opened.user_id, session_id=opened.session_id,
                                 scopes=opened.scopes,
                                 refresh=self._tokens.token(opened.session_id, 0), now=now,
                                 session_expires_at=now + self._session_ttl, amr=opened.amr,
                                 auth_time=now, profile=profile)

    async def reissue(self, session_id: str, refreshed: Refreshed, refresh_token: str,
                      ) -> TokenPair:
        """The pair a refresh answers: the session's sign-in (amr, its age by the
        database's clock) carried over, with ``refresh_token`` the successor."""
        profile = await self._profile(refreshed.user_id)
        now = self._clock()
        return self._issuer.pair(user_id=refreshed.user_id, session_id=session_id,
                                 scopes=refreshed.scopes, refresh=refresh_token, now=now,
                                 session_expires_at=now + refreshed.expires_in,
                                 amr=refreshed.amr, auth_time=now - refreshed.auth_age,
                                 profile=profile)

    async def _profile(self, user_id: str) -> Profile | None:
        return None if self._profiles is None else await self._profiles(user_id)
