"""The Auth methods other services use: Validate, Revoke, the key set, the
revocation feed and refresh-token introspection. Who may call each is the door's
(``transport.door``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..clock import Clock
from ..core.keys import KeyRing
from ..core.revocations import RevocationSet
from ..core.tokens import AccessClaims, TokenRules
from ..domain.sessions.refresh import Refresh
from ..domain.sessions.sign_out import SignOut
from ..domain.tokens.validator import Validator
from ..errors import TokenExpired, TokenRevoked, Unavailable
from ..guard.bearer import bearer_token
from ..guard.interceptor import claims_var
from ..v1 import auth_pb2
from .convert import Callers
from .feed import FeedAccess

# An empty WatchRevocations message this often: a watcher counts its staleness
# from the last message, so a frozen authsvc is noticed within its bound.
HEARTBEAT_INTERVAL = 1.0


class TokenServiceMethods:
    """``rules`` are the token rules authsvc issues and validates under; GetJwks
    publishes them beside the keys (``published_rules``)."""

    def __init__(self, validator: Validator, sign_out: SignOut, refresh: Refresh,
                 ring: Callable[[], KeyRing], revocations: RevocationSet, feed: FeedAccess,
                 clock: Clock, callers: Callers, rules: TokenRules) -> None:
        self._validator = validator
        self._rules = published_rules(rules)
        self._sign_out = sign_out
        self._refresh = refresh
        self._ring = ring
        self._revocations = revocations
        self._feed = feed
        self._clock = clock
        self._caller = callers

    async def Validate(self, request: auth_pb2.ValidateRequest,
                       context: grpc.aio.ServicerContext) -> auth_pb2.ValidateResponse:
        bearer = None if request.access_token else bearer_token(context.invocation_metadata())
        claims = await self._validator.validate_request(request.access_token, bearer)
        response = auth_pb2.ValidateResponse(
            user_id=claims.user_id, session_id=claims.session_id, token_id=claims.token_id,
            scopes=claims.scopes, issued_at=Timestamp(seconds=int(claims.issued_at)),
            expires_at=Timestamp(seconds=int(claims.expires_at)), amr=claims.amr,
            acr=claims.acr or "")
        if claims.auth_time is not None:
            response.auth_time.CopyFrom(Timestamp(seconds=int(claims.auth_time)))
        if request.profile:
            profile = await self._validator.profile(claims)
            for name, value in profile.claims().items():
                setattr(response, name, value)
        return response

    async def Revoke(self, request: auth_pb2.RevokeRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.RevokeResponse:
        await self._sign_out.revoke(request.token, all_sessions=request.all_sessions,
                                    claims=claims_var.get(), caller=self._caller(context))
        return auth_pb2.RevokeResponse()

    async def GetJwks(self, request: auth_pb2.GetJwksRequest,
                      context: grpc.aio.ServicerContext) -> auth_pb2.GetJwksResponse:
        keys = self._ring().published(self._clock())
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**k.jwk) for k in keys],
                                        rules=self._rules)

    async def IntrospectRefreshToken(
            self, request: auth_pb2.IntrospectRefreshTokenRequest,
            context: grpc.aio.ServicerContext) -> auth_pb2.IntrospectRefreshTokenResponse:
        found = await self._refresh.introspect(request.refresh_token)
        if found is None:
            return auth_pb2.IntrospectRefreshTokenResponse(active=False)
        return auth_pb2.IntrospectRefreshTokenResponse(
            active=True, user_id=found.user_id, session_id=found.session_id,
            scopes=found.scopes, expires_at=Timestamp(seconds=int(found.expires_at)))

    async def WatchRevocations(self, request: auth_pb2.WatchRevocationsRequest,
                               context: grpc.aio.ServicerContext,
                               ) -> AsyncIterator[auth_pb2.WatchRevocationsResponse]:
        revocations = self._revocations
        async with self._feed.admitted(context):
            if not revocations.trusted:
                raise Unavailable("revocation feed is down")
            async for message in self._follow(revocations, claims_var.get()):
                yield message

    async def _follow(self, revocations: RevocationSet, watcher: AccessClaims | None,
                      ) -> AsyncIterator[auth_pb2.WatchRevocationsResponse]:
        """The snapshot, then each batch of revocations, and heartbeats in between; a
        stream admitted by an access token ends when that token expires or its session
        is revoked (after the batch that says so), as a new stream would be refused."""
        queue = revocations.watch()
        try:
            snapshot = revocations.snapshot()
            yield auth_pb2.WatchRevocationsResponse(session_ids=snapshot, snapshot=True)
            self._check_watcher(watcher, snapshot)
            while True:
                try:
                    # Not wait_for, which in Python 3.11 can swallow the stream's
                    # cancellation when a batch arrives at the same moment.
                    async with asyncio.timeout(HEARTBEAT_INTERVAL):
                        batch = await queue.get()
                except TimeoutError:
                    # A heartbeat says "nothing new, and this set is current": only
                    # while this worker's own feed is, or the watcher would trust a
                    # stale set.
                    if not revocations.trusted:
                        raise Unavailable("revocation feed is stale") from None
                    self._check_watcher(watcher, ())
                    yield auth_pb2.WatchRevocationsResponse()
                    continue
                if batch is None:  # the feed went down, or we fell behind
                    raise Unavailable("revocation feed interrupted")
                yield auth_pb2.WatchRevocationsResponse(session_ids=batch)
                self._check_watcher(watcher, batch)
        finally:
            revocations.unwatch(queue)

    def _check_watcher(self, watcher: AccessClaims | None, revoked: Collection[str]) -> None:
        if watcher is None:  # admitted by its client certificate
            return
        if watcher.session_id in revoked:
            raise TokenRevoked()
        if self._clock() >= watcher.expires_at:
            raise TokenExpired()


def published_rules(rules: TokenRules) -> auth_pb2.TokenRules:
    """What GetJwks tells verifiers elsewhere: the rules ``Validate`` applies, with
    the access-token lifetime as its longest accepted ``exp - iat``."""
    return auth_pb2.TokenRules(
        issuer=rules.issuer, audience=rules.audience, algorithms=sorted(rules.algorithms),
        access_token_ttl_seconds=int(rules.max_lifetime), leeway_seconds=rules.leeway)
