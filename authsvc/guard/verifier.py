"""What an interceptor asks: is this access token good, and whose is it."""

from __future__ import annotations

from typing import Protocol

from ..core.tokens import AccessClaims


class Verifier(Protocol):
    """Checks an access token and returns its claims, or raises an authsvc error
    (``TokenMissing``, ``TokenInvalid``, ``TokenExpired``, ``TokenRevoked``,
    ``Unavailable``). ``verify`` blocks (sync servers and handlers);
    ``verify_async`` is for ``grpc.aio`` servers."""

    def verify(self, token: str) -> AccessClaims: ...

    async def verify_async(self, token: str) -> AccessClaims: ...
