"""SignOut (RFC 7009 Revoke): the session of a token, or every session of the caller,
ended through the one revocation mechanism (``revocation``)."""

from __future__ import annotations

from ...core import tokens
from ...core.tokens import AccessClaims
from ...errors import InvalidArgument, TokenInvalid, TokenMissing, Unavailable
from ...store.database import Database
from ..caller import Caller
from ..tokens.validator import Validator
from . import refresh_tokens
from .revocation import Revocations


class SignOut:
    """RFC 7009 Revoke: an unknown or invalid token is not an error.

    ``all_sessions`` ends every session of the caller's user (the door has
    verified the caller's access token)."""

    def __init__(self, db: Database, revocations: Revocations, validator: Validator,
                 tokens: refresh_tokens.RefreshTokens) -> None:
        self._db = db
        self._tokens = tokens
        self._revocations = revocations
        self._validator = validator

    async def revoke(self, token: str, *, all_sessions: bool, claims: AccessClaims | None,
                     caller: Caller) -> None:
        if not token and not all_sessions:
            raise InvalidArgument("token", "must not be empty")
        if len(token) > tokens.MAX_TOKEN_LENGTH:
            raise InvalidArgument("token", f"must be at most {tokens.MAX_TOKEN_LENGTH} characters")
        if all_sessions and claims is None:
            raise TokenMissing()
        user_id = claims.user_id if all_sessions and claims is not None else None
        session_id = await self._session_of(token) if token else None
        async with self._revocations.transaction() as change:
            if session_id is not None:
                await change.revoke([session_id], reason="revoked", caller=caller)
            if user_id is not None:
                await change.revoke(user_id=user_id, reason="revoked_all", caller=caller)

    async def _session_of(self, token: str) -> str | None:
        if token.count(".") == 2:
            try:
                return (await self._validator.verify_ignoring_revocation(token)).session_id
            except (TokenInvalid, InvalidArgument):
                return None
            except Unavailable:
                raise
            except Exception:  # any other verification failure: RFC 7009 says OK
                return None
        async with self._db.connection() as conn:
            found = await refresh_tokens.presented(self._tokens, conn, token)
        return None if found is None else found[0]
