"""Validate: the hot path, which touches no database.

A token is verified with the one ``TokenCheck`` (signature and claims once,
then from a bounded cache until its exp; time claims on every call), then
checked against the revocation set. Only when the revocation feed has been
down longer than its allowed staleness does Validate ask the database, and
it fails closed (``Unavailable``) when the database cannot answer.

A caller that asks for the profile (``profile``) gets the token's own when it
carries one (AUTHSVC_ACCESS_TOKEN_PROFILE), else one read of the user's row;
nobody else pays for it.
"""

from __future__ import annotations

from ... import tracing
from ...clock import Clock
from ...core.revocations import RevocationSet
from ...core.tokens import MAX_TOKEN_LENGTH, AccessClaims, Profile, TokenRules, UnknownKey
from ...core.verification import TokenCheck
from ...errors import InvalidArgument, TokenRevoked
from ...store import sessions as session_rows
from ...store.database import Database
from .keystore import KeyStore
from .profiles import Profiles


class Validator:
    def __init__(self, db: Database, keystore: KeyStore, revocations: RevocationSet,
                 rules: TokenRules, clock: Clock, cache_size: int) -> None:
        self._db = db
        self._keystore = keystore
        self._revocations = revocations
        self._check = TokenCheck(rules, lambda kid: keystore.ring.get(kid), clock, cache_size)
        self._profiles = Profiles(db)

    async def validate_request(self, access_token: str, bearer: str | None) -> AccessClaims:
        """Validate's request: the ``access_token`` field, or else the bearer token."""
        if len(access_token) > MAX_TOKEN_LENGTH:
            raise InvalidArgument("access_token",
                                  f"must be at most {MAX_TOKEN_LENGTH} characters")
        return await self.validate(access_token or bearer or "")

    async def validate(self, token: str) -> AccessClaims:
        claims = await self.verify_ignoring_revocation(token)
        revoked = self._revocations.is_revoked(claims.session_id)
        if tracing.enabled():
            tracing.annotate({"authsvc.revocation_feed.lag_s": self._revocations.lag(),
                              "authsvc.revocation_feed.trusted": self._revocations.trusted})
        if revoked is None:  # the feed is too stale to trust: ask the database
            async with self._db.connection() as conn:
                revoked = await session_rows.is_revoked(conn, claims.session_id)
        if revoked:
            raise TokenRevoked()
        return claims

    async def profile(self, claims: AccessClaims) -> Profile:
        """The profile of a validated token's user: the token's own when it carries one
        (signed by authsvc, as of its issue), else read from the user's row now."""
        if claims.profile is not None:
            return claims.profile
        return await self._profiles.of(claims.user_id)

    async def verify_ignoring_revocation(self, token: str) -> AccessClaims:
        try:
            return self._check.claims(token)
        except UnknownKey:
            await self._keystore.reload_for_unknown_kid()
            return self._check.claims(token, keys_reloaded=True)

    def evict_expired(self) -> None:
        self._check.evict_expired()
