"""The one verification every verifier runs: authsvc's Validate and the LocalVerifier.

``TokenCheck.claims`` verifies signature and claims once per token (then
serves them from a bounded cache until exp + leeway) and checks the time
claims on every call. Revocation is the caller's second step, against its
``RevocationSet``; what to do when that set is too stale differs (Validate
asks the database, the LocalVerifier fails closed), the rules do not.

An unknown kid is the one case worth a second try: the caller reloads its
keys (at most once per ``ReloadGate`` interval, so forged kids cannot make
it hammer its source) and calls ``claims(token, keys_reloaded=True)``, which
then refuses the kid for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..clock import Clock
from ..errors import TokenInvalid, TokenMissing
from . import tokens
from .keys import SigningKey
from .tokens import AccessClaims, TokenCache, TokenRules, UnknownKey


class TokenCheck:
    """Signature, claims and time of access tokens under ``rules``."""

    def __init__(self, rules: TokenRules, lookup: Callable[[str], SigningKey | None],
                 clock: Clock, cache_size: int) -> None:
        self.rules = rules
        self._lookup = lookup
        self._clock = clock
        self._cache = TokenCache(cache_size)

    def claims(self, token: str, *, keys_reloaded: bool = False) -> AccessClaims:
        """The verified claims; raises TokenMissing, TokenInvalid, TokenExpired, or
        UnknownKey (unless ``keys_reloaded``: then the kid is just invalid)."""
        if not token:
            raise TokenMissing()
        now = self._clock()
        claims = self._cache.get(token, now)
        if claims is not None:
            claims.check_times(now, self.rules.leeway)
            return claims
        try:
            claims = tokens.verify(token, self._lookup, self.rules, now)
        except UnknownKey:
            if keys_reloaded:
                raise TokenInvalid() from None
            raise
        self._cache.put(token, claims, claims.expires_at + self.rules.leeway)
        return claims

    def evict_expired(self) -> None:
        self._cache.evict_expired(self._clock())


class ReloadGate:
    """Lets a reload through at most once per ``interval`` seconds."""

    def __init__(self, interval: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._last = -float("inf")

    def loaded(self) -> None:
        """A reload just happened (whatever caused it)."""
        self._last = self._monotonic()

    def due(self) -> bool:
        """True (and counted as a reload) when the last one is ``interval`` old."""
        if self._monotonic() - self._last < self._interval:
            return False
        self._last = self._monotonic()
        return True
