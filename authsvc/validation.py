"""Validate: the hot path, which touches no database.

A token is verified once (signature and claims) and then kept in a bounded
cache until its exp; every call still checks the time claims and the
revocation set. Only when the revocation feed has been down longer than its
allowed staleness does Validate ask the database, and it fails closed
(``Unavailable``) when the database cannot answer.
"""

from __future__ import annotations

from . import tokens
from .clock import Clock
from .config import Settings
from .errors import TokenInvalid, TokenMissing, TokenRevoked
from .keys import SigningKey
from .keystore import KeyStore
from .revocations import RevocationSet
from .store import sessions as session_rows
from .store.database import Database
from .tokens import AccessClaims, TokenRules, VerifiedTokens


class Validator:
    def __init__(self, db: Database, settings: Settings, clock: Clock, keystore: KeyStore,
                 revocations: RevocationSet) -> None:
        self._db = db
        self._clock = clock
        self._keystore = keystore
        self._revocations = revocations
        self._cache = VerifiedTokens(settings.token_cache_size)
        self._leeway = settings.clock_leeway
        self.rules = TokenRules(issuer=settings.issuer, audience=settings.audience,
                                algorithms=frozenset({settings.signing_alg}),
                                leeway=settings.clock_leeway,
                                max_lifetime=settings.access_token_ttl)

    async def validate(self, token: str) -> AccessClaims:
        if not token:
            raise TokenMissing()
        claims = await self.verify_ignoring_revocation(token)
        revoked = self._revocations.is_revoked(claims.session_id)
        if revoked is None:  # the feed is too stale to trust: ask the database
            async with self._db.connection() as conn:
                revoked = await session_rows.revoked_at(conn, claims.session_id) is not None
        if revoked:
            raise TokenRevoked()
        return claims

    async def verify_ignoring_revocation(self, token: str) -> AccessClaims:
        now = self._clock()
        claims = self._cache.get(token)
        if claims is not None:
            claims.check_times(now, self._leeway)
            return claims
        try:
            claims = tokens.verify(token, self._lookup, self.rules, now)
        except TokenInvalid:
            if not self._unknown_kid(token):
                raise
            await self._keystore.reload_for_unknown_kid()
            claims = tokens.verify(token, self._lookup, self.rules, now)
        self._cache.put(token, claims)
        return claims

    def evict_expired(self) -> None:
        self._cache.evict_expired(self._clock(), self._leeway)

    def _lookup(self, kid: str) -> SigningKey | None:
        key = self._keystore.ring.get(kid)
        if key is None or not key.published_at(self._clock()):
            return None
        return key

    def _unknown_kid(self, token: str) -> bool:
        try:
            kid = tokens.unverified_kid(token)
        except TokenInvalid:
            return False
        return kid is not None and self._keystore.ring.get(kid) is None
