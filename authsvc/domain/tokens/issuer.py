"""Minting: the token pair a sign-in or refresh answers with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ...config import Settings
from ...core import tokens
from ...core.keys import KeyRing
from ...core.tokens import Profile, TokenRules
from ...errors import Unavailable


def token_rules(settings: Settings) -> TokenRules:
    """The rules authsvc issues under and Validate verifies with."""
    return TokenRules(issuer=settings.issuer, audience=settings.audience,
                      algorithms=frozenset({settings.signing_alg}),
                      leeway=settings.clock_leeway, max_lifetime=settings.access_token_ttl)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str
    user_id: str


class Keys(Protocol):
    """Where the current key ring is kept (``KeyStore``, loaded from the database)."""

    @property
    def ring(self) -> KeyRing: ...


class Issuer:
    """Signs access tokens with the key ring's current signer."""

    def __init__(self, keystore: Keys, rules: TokenRules, access_token_ttl: int,
                 session_idle_ttl: int) -> None:
        self._keystore = keystore
        self._rules = rules
        self._access_ttl = access_token_ttl
        self._idle_ttl = session_idle_ttl

    def pair(self, *, user_id: str, session_id: str, scopes: tuple[str, ...], refresh: str,
             now: float, session_expires_at: float, amr: tuple[str, ...] = ("pwd",),
             auth_time: float | None = None, profile: Profile | None = None) -> TokenPair:
        """The pair for a session whose user authenticated by ``amr`` at ``auth_time``
        (the sign-in; ``now`` when not given); the access token carries ``profile`` when
        given (AUTHSVC_ACCESS_TOKEN_PROFILE)."""
        key = self._keystore.ring.signer(now)
        if key is None:
            raise Unavailable("no signing key")
        access, _ = tokens.issue(key, self._rules, user_id=user_id, session_id=session_id,
                                 scopes=scopes, now=now, ttl=self._access_ttl, amr=amr,
                                 auth_time=now if auth_time is None else auth_time,
                                 profile=profile)
        refresh_ends = min(session_expires_at, now + self._idle_ttl)
        return TokenPair(access_token=access, expires_in=self._access_ttl,
                         refresh_token=refresh,
                         refresh_expires_in=max(0, round(refresh_ends - now)),
                         session_id=session_id, user_id=user_id)
