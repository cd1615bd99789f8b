"""The Auth servicer: a thin layer from protobuf to the domain and back.

Every field is checked by the domain; every exception leaves through the
one mapping in ``transport.calls``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..clock import Clock
from ..core.keys import KeyRing
from ..core.revocations import RevocationSet
from ..domain.caller import Caller
from ..domain.factors import Factors
from ..domain.issuer import TokenPair
from ..domain.mfa import SecondFactorSignIn
from ..domain.passkeys import Passkeys
from ..domain.refresh import Refresh
from ..domain.revocation import SignOut
from ..domain.self_service import SelfService
from ..domain.signin import SignIn
from ..domain.validator import Validator
from ..errors import PermissionDenied, Unavailable
from ..guard.bearer import bearer_token
from ..v1 import auth_pb2, auth_pb2_grpc
from .factor_methods import FactorMethods
from .feed import FeedAccess
from .metadata import Networks, caller

TOKEN_TYPE = "Bearer"  # noqa: S105 (the OAuth token_type, not a secret)
# An empty WatchRevocations message this often: a watcher counts its staleness
# from the last message, so a frozen authsvc is noticed within its bound.
HEARTBEAT_INTERVAL = 1.0
# The scope a caller of IntrospectRefreshToken needs (the gateway's RFC 7662
# endpoint forwards its caller's bearer).
INTROSPECT_SCOPE = "authsvc.introspect"


class AuthServicer(FactorMethods, auth_pb2_grpc.AuthServicer):
    def __init__(self, sign_in: SignIn, refresh: Refresh, sign_out: SignOut,
                 validator: Validator, ring: Callable[[], KeyRing],
                 revocations: RevocationSet, feed: FeedAccess, clock: Clock,
                 trusted_proxies: Networks, self_service: SelfService, *, factors: Factors,
                 second_factor: SecondFactorSignIn, passkeys: Passkeys) -> None:
        self._self = self_service
        self._factors = factors
        self._passkeys = passkeys
        self._second_factor = second_factor
        self._sign_in = sign_in
        self._refresh = refresh
        self._sign_out = sign_out
        self._validator = validator
        self._ring = ring
        self._revocations = revocations
        self._feed = feed
        self._clock = clock
        self._proxies = trusted_proxies

    async def SignIn(self, request: auth_pb2.SignInRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.SignInResponse:
        kind = request.WhichOneof("identifier")
        signed_in = await self._sign_in.sign_in(
            kind, getattr(request, kind) if kind else "", request.password,
            self._caller(context), request.device_token)
        return auth_pb2.SignInResponse(**_token_fields(signed_in.tokens),
                                       device_token=signed_in.device_token)

    async def Refresh(self, request: auth_pb2.RefreshRequest,
                      context: grpc.aio.ServicerContext) -> auth_pb2.RefreshResponse:
        pair = await self._refresh.refresh(request.refresh_token, self._caller(context))
        return auth_pb2.RefreshResponse(**_token_fields(pair))

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
        return response

    async def Revoke(self, request: auth_pb2.RevokeRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.RevokeResponse:
        bearer = None
        if request.all_sessions:
            bearer = bearer_token(context.invocation_metadata())
        await self._sign_out.revoke(request.token, all_sessions=request.all_sessions,
                                    bearer=bearer, caller=self._caller(context))
        return auth_pb2.RevokeResponse()

    async def GetJwks(self, request: auth_pb2.GetJwksRequest,
                      context: grpc.aio.ServicerContext) -> auth_pb2.GetJwksResponse:
        keys = self._ring().published(self._clock())
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**k.jwk) for k in keys])

    async def WatchRevocations(self, request: auth_pb2.WatchRevocationsRequest,
                               context: grpc.aio.ServicerContext,
                               ) -> AsyncIterator[auth_pb2.WatchRevocationsResponse]:
        revocations = self._revocations
        async with self._feed.admitted(context):
            if not revocations.trusted:
                raise Unavailable("revocation feed is down")
            async for message in self._follow(revocations):
                yield message

    async def _follow(self, revocations: RevocationSet,
                      ) -> AsyncIterator[auth_pb2.WatchRevocationsResponse]:
        """The snapshot, then each batch of revocations, and heartbeats in between."""
        queue = revocations.watch()
        try:
            yield auth_pb2.WatchRevocationsResponse(session_ids=revocations.snapshot(),
                                                    snapshot=True)
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
                    yield auth_pb2.WatchRevocationsResponse()
                    continue
                if batch is None:  # the feed went down, or we fell behind
                    raise Unavailable("revocation feed interrupted")
                yield auth_pb2.WatchRevocationsResponse(session_ids=batch)
        finally:
            revocations.unwatch(queue)

    async def SignUp(self, request: auth_pb2.SignUpRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.SignUpResponse:
        kind = request.WhichOneof("identifier")
        signed_in = await self._self.sign_up.sign_up(
            kind, getattr(request, kind) if kind else "", request.password,
            self._caller(context))
        if signed_in is None:
            return auth_pb2.SignUpResponse()
        return auth_pb2.SignUpResponse(**_token_fields(signed_in.tokens))

    async def VerifyIdentifier(self, request: auth_pb2.VerifyIdentifierRequest,
                               context: grpc.aio.ServicerContext,
                               ) -> auth_pb2.VerifyIdentifierResponse:
        kind = request.WhichOneof("identifier")
        await self._self.verification.verify(kind, getattr(request, kind) if kind else "",
                                             request.code, self._caller(context))
        return auth_pb2.VerifyIdentifierResponse()

    async def ResendVerification(self, request: auth_pb2.ResendVerificationRequest,
                                 context: grpc.aio.ServicerContext,
                                 ) -> auth_pb2.ResendVerificationResponse:
        kind = request.WhichOneof("identifier")
        await self._self.verification.resend(kind, getattr(request, kind) if kind else "",
                                             self._caller(context))
        return auth_pb2.ResendVerificationResponse()

    async def ChangePassword(self, request: auth_pb2.ChangePasswordRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> auth_pb2.ChangePasswordResponse:
        bearer = bearer_token(context.invocation_metadata())
        await self._self.change_password.change(bearer, request.current_password,
                                                request.new_password, self._caller(context))
        return auth_pb2.ChangePasswordResponse()

    async def RequestPasswordReset(self, request: auth_pb2.RequestPasswordResetRequest,
                                   context: grpc.aio.ServicerContext,
                                   ) -> auth_pb2.RequestPasswordResetResponse:
        kind = request.WhichOneof("identifier")
        await self._self.password_reset.request(kind, getattr(request, kind) if kind else "",
                                                self._caller(context))
        return auth_pb2.RequestPasswordResetResponse()

    async def ResetPassword(self, request: auth_pb2.ResetPasswordRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> auth_pb2.ResetPasswordResponse:
        kind = request.WhichOneof("identifier")
        await self._self.password_reset.reset(kind, getattr(request, kind) if kind else "",
                                              request.code, request.new_password,
                                              self._caller(context))
        return auth_pb2.ResetPasswordResponse()
    async def IntrospectRefreshToken(
            self, request: auth_pb2.IntrospectRefreshTokenRequest,
            context: grpc.aio.ServicerContext) -> auth_pb2.IntrospectRefreshTokenResponse:
        claims = await self._validator.validate(
            bearer_token(context.invocation_metadata()) or "")
        if INTROSPECT_SCOPE not in claims.scopes:
            raise PermissionDenied((INTROSPECT_SCOPE,))
        found = await self._refresh.introspect(request.refresh_token)
        if found is None:
            return auth_pb2.IntrospectRefreshTokenResponse(active=False)
        return auth_pb2.IntrospectRefreshTokenResponse(
            active=True, user_id=found.user_id, session_id=found.session_id,
            scopes=found.scopes, expires_at=Timestamp(seconds=int(found.expires_at)))

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        return caller(context.invocation_metadata(), context.peer(), self._proxies)


def _token_fields(pair: TokenPair) -> dict[str, Any]:
    return {"access_token": pair.access_token, "token_type": TOKEN_TYPE,
            "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
            "refresh_expires_in": pair.refresh_expires_in, "session_id": pair.session_id,
            "user_id": pair.user_id}
