"""RemoteVerifier: ask authsvc's Validate, caching positive answers briefly."""

from __future__ import annotations

import threading

import grpc

from ..clock import Clock, system_clock
from ..core import tokens
from ..core.tokens import AccessClaims, TokenCache
from ..errors import TokenInvalid, TokenMissing
from ..v1 import auth_pb2, auth_pb2_grpc
from .channels import open_aio_channel, open_channel
from .status import token_error_of


class RemoteVerifier:
    """Asks authsvc's Validate, caching positive answers briefly.

    A cached answer lives at most ``cache_ttl`` seconds and never past the
    token's exp, so a revocation is seen within ``cache_ttl``. ``verify``
    uses a sync channel; ``verify_async`` an aio channel made on first use in
    the running event loop (use it from one loop). Refusals are authsvc's own
    (its ErrorInfo reason); when authsvc cannot answer, ``Unavailable``.
    """

    def __init__(self, target: str, *, cache_size: int = 1000, cache_ttl: float = 2.0,
                 channel_credentials: grpc.ChannelCredentials | None = None,
                 timeout: float = 2.0, clock: Clock = system_clock) -> None:
        self._target = target
        self._credentials = channel_credentials
        self._timeout = timeout
        self._clock = clock
        self._ttl = cache_ttl
        self._cache = TokenCache(cache_size)
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
            raise token_error_of(exc) from None
        return self._remember(token, response)

    async def verify_async(self, token: str) -> AccessClaims:
        cached = self._cached(token)
        if cached is not None:
            return cached
        if self._aio is None:
            self._aio_channel = open_aio_channel(self._target, self._credentials)
            self._aio = auth_pb2_grpc.AuthStub(self._aio_channel)
        try:
            response = await self._aio.Validate(
                auth_pb2.ValidateRequest(access_token=token), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise token_error_of(exc) from None
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
        return self._cache.get(token, self._clock())

    def _remember(self, token: str, response: auth_pb2.ValidateResponse) -> AccessClaims:
        claims = AccessClaims(
            user_id=response.user_id, session_id=response.session_id,
            token_id=response.token_id, scopes=tuple(response.scopes),
            issued_at=float(response.issued_at.seconds),
            not_before=float(response.issued_at.seconds),
            expires_at=float(response.expires_at.seconds), amr=tuple(response.amr),
            acr=response.acr or None,
            auth_time=float(response.auth_time.seconds) if response.HasField("auth_time")
            else None)
        self._cache.put(token, claims, min(claims.expires_at, self._clock() + self._ttl))
        return claims
