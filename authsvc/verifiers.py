"""Verifiers: how an interceptor decides whether an access token holds.

One small interface (``Verifier``), chosen when the interceptor is built:

- ``LocalVerifier`` checks tokens in-process against the key set it fetched
  with ``GetJwks`` (refetched on an unknown kid, at most once per
  ``kid_refetch_interval``) under the same strict rules as ``Validate``, and
  follows ``WatchRevocations`` so a revoked session is refused within
  milliseconds with no call per request. When the stream is down it
  reconnects with backoff; past ``max_staleness`` it fails closed
  (``Unavailable``, sent as UNAVAILABLE).
- ``RemoteVerifier`` asks authsvc's ``Validate`` and keeps positive answers
  in a small bounded cache for at most ``cache_ttl`` seconds, never past the
  token's exp.
- ``InProcessVerifier`` is authsvc guarding its own services (UserAdmin).

Every verifier raises the exceptions of ``authsvc.errors`` (``TokenMissing``,
``TokenInvalid``, ``TokenExpired``, ``TokenRevoked``, ``Unavailable``); the
interceptor turns them into status with ``authsvc.transport.status.describe``.
``verify`` blocks (for sync ``grpc`` servers and sync handlers);
``verify_async`` is for ``grpc.aio`` servers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from google.rpc import error_details_pb2, status_pb2

from . import tokens
from .clock import Clock, system_clock
from .errors import TokenExpired, TokenInvalid, TokenMissing, TokenRevoked, Unavailable
from .local_verifier import CHANNEL_OPTIONS, LocalVerifier, open_channel
from .tokens import AccessClaims
from .v1 import auth_pb2, auth_pb2_grpc

__all__ = ["InProcessVerifier", "LocalVerifier", "RemoteVerifier", "Verifier"]


class Verifier(Protocol):
    """Checks an access token and returns its claims, or raises an authsvc error."""

    def verify(self, token: str) -> AccessClaims: ...

    async def verify_async(self, token: str) -> AccessClaims: ...


class RemoteVerifier:
    """Asks authsvc's Validate, caching positive answers briefly.

    A cached answer lives at most ``cache_ttl`` seconds and never past the
    token's exp, so a revocation is seen within ``cache_ttl``. ``verify``
    uses a sync channel; ``verify_async`` an aio channel made on first use in
    the running event loop (use it from one loop).
    """

    def __init__(self, target: str, *, cache_size: int = 1000, cache_ttl: float = 2.0,
                 channel_credentials: grpc.ChannelCredentials | None = None,
                 timeout: float = 2.0, clock: Clock = system_clock) -> None:
        self._target = target
        self._credentials = channel_credentials
        self._timeout = timeout
        self._clock = clock
        self._capacity = cache_size
        self._ttl = cache_ttl
        self._cache: dict[str, tuple[AccessClaims, float]] = {}
        self._lock = threading.Lock()
        self._sync: auth_pb2_grpc.AuthStub | None = None
        self._sync_channel: grpc.Channel | None = None
        self._aio: auth_pb2_grpc.AuthStub | None = None
        self._aio_channel: grpc.aio.Channel | None = None

    def verify(self, token: str) -> AccessClaims:
        cached = self._cached(token)
        if cached is not None:
            return cached
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync_channel = open_channel(self._target, self._credentials)
                    self._sync = auth_pb2_grpc.AuthStub(self._sync_channel)
        try:
            response = self._sync.Validate(auth_pb2.ValidateRequest(access_token=token),
                                           timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _error_of(exc) from None
        return self._remember(token, response)

    async def verify_async(self, token: str) -> AccessClaims:
        cached = self._cached(token)
        if cached is not None:
            return cached
        if self._aio is None:
            if self._credentials is None:
                self._aio_channel = grpc.aio.insecure_channel(self._target,
                                                              options=CHANNEL_OPTIONS)
            else:
                self._aio_channel = grpc.aio.secure_channel(self._target, self._credentials,
                                                            options=CHANNEL_OPTIONS)
            self._aio = auth_pb2_grpc.AuthStub(self._aio_channel)
        try:
            response = await self._aio.Validate(
                auth_pb2.ValidateRequest(access_token=token), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _error_of(exc) from None
        return self._remember(token, response)

    def close(self) -> None:
        if self._sync_channel is not None:
            self._sync_channel.close()

    async def aclose(self) -> None:
        self.close()
        if self._aio_channel is not None:
            await self._aio_channel.close()

    def _cached(self, token: str) -> AccessClaims | None:
        if not token:
            raise TokenMissing()
        if len(token) > tokens.MAX_TOKEN_LENGTH:
            raise TokenInvalid()
        entry = self._cache.get(token)
        if entry is not None and self._clock() < entry[1]:
            return entry[0]
        return None

    def _remember(self, token: str, response: auth_pb2.ValidateResponse) -> AccessClaims:
        claims = AccessClaims(
            user_id=response.user_id, session_id=response.session_id,
            token_id=response.token_id, scopes=tuple(response.scopes),
            issued_at=float(response.issued_at.seconds),
            not_before=float(response.issued_at.seconds),
            expires_at=float(response.expires_at.seconds))
        until = min(claims.expires_at, self._clock() + self._ttl)
        if self._capacity > 0:
            with self._lock:
                if len(self._cache) >= self._capacity:
                    self._cache.pop(next(iter(self._cache)), None)
                self._cache[token] = (claims, until)
        return claims


_BY_REASON: dict[str, type[Exception]] = {
    "TOKEN_MISSING": TokenMissing, "TOKEN_INVALID": TokenInvalid,
    "TOKEN_EXPIRED": TokenExpired, "TOKEN_REVOKED": TokenRevoked,
}


def _error_of(exc: grpc.RpcError) -> Exception:
    """The authsvc error a failed Validate stands for; anything odd fails closed."""
    code = exc.code()
    if code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
        return Unavailable(f"Validate failed: {code}")
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info) and info.reason in _BY_REASON:
                    return _BY_REASON[info.reason]()
    return TokenInvalid()


class InProcessVerifier:
    """authsvc guarding its own services: the Validator of this worker (aio only)."""

    def __init__(self, validate: Callable[[str], Any]) -> None:
        self._validate = validate

    def verify(self, token: str) -> AccessClaims:
        raise TypeError("InProcessVerifier serves grpc.aio servers only")

    async def verify_async(self, token: str) -> AccessClaims:
        claims: AccessClaims = await self._validate(token)
        return claims
