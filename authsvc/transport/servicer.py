"""The Auth servicer: a thin layer from protobuf to the domain and back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..app import App
from ..errors import InvalidArgument, Unavailable
from ..sessions import Caller, TokenPair
from ..tokens import MAX_TOKEN_LENGTH
from ..v1 import auth_pb2, auth_pb2_grpc
from .metadata import Networks, bearer_token, caller, networks
from .status import streaming, unary

TOKEN_TYPE = "Bearer"  # noqa: S105 (the OAuth token_type, not a secret)


class AuthServicer(auth_pb2_grpc.AuthServicer):
    def __init__(self, app: App) -> None:
        self._app = app
        self._proxies = networks(app.settings.trusted_proxies)

    @unary
    async def SignIn(self, request: auth_pb2.SignInRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.SignInResponse:
        kind = request.WhichOneof("identifier")
        if kind is None:
            raise InvalidArgument("identifier", "one of email, phone or username is required")
        pair = await self._app.sessions.sign_in(
            kind, getattr(request, kind), request.password, _caller(context, self._proxies))
        return auth_pb2.SignInResponse(**_token_fields(pair))

    @unary
    async def Refresh(self, request: auth_pb2.RefreshRequest,
                      context: grpc.aio.ServicerContext) -> auth_pb2.RefreshResponse:
        pair = await self._app.sessions.refresh(request.refresh_token,
                                                _caller(context, self._proxies))
        return auth_pb2.RefreshResponse(**_token_fields(pair))

    @unary
    async def Validate(self, request: auth_pb2.ValidateRequest,
                       context: grpc.aio.ServicerContext) -> auth_pb2.ValidateResponse:
        token = request.access_token
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidArgument("access_token", f"must be at most {MAX_TOKEN_LENGTH} characters")
        if not token:
            token = bearer_token(context.invocation_metadata()) or ""
        claims = await self._app.validator.validate(token)
        return auth_pb2.ValidateResponse(
            user_id=claims.user_id, session_id=claims.session_id, token_id=claims.token_id,
            scopes=claims.scopes, issued_at=Timestamp(seconds=int(claims.issued_at)),
            expires_at=Timestamp(seconds=int(claims.expires_at)))

    @unary
    async def Revoke(self, request: auth_pb2.RevokeRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.RevokeResponse:
        bearer = None
        if request.all_sessions:
            bearer = bearer_token(context.invocation_metadata())
        await self._app.sessions.revoke(request.token, all_sessions=request.all_sessions,
                                        bearer=bearer, caller=_caller(context, self._proxies))
        return auth_pb2.RevokeResponse()

    @unary
    async def GetJwks(self, request: auth_pb2.GetJwksRequest,
                      context: grpc.aio.ServicerContext) -> auth_pb2.GetJwksResponse:
        keys = self._app.keystore.ring.published(self._app.clock())
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**k.jwk) for k in keys])

    @streaming
    async def WatchRevocations(self, request: auth_pb2.WatchRevocationsRequest,
                               context: grpc.aio.ServicerContext,
                               ) -> AsyncIterator[auth_pb2.WatchRevocationsResponse]:
        revocations = self._app.revocations
        if not revocations.trusted:
            raise Unavailable("revocation feed is down")
        queue = revocations.watch()
        try:
            yield auth_pb2.WatchRevocationsResponse(session_ids=revocations.snapshot(),
                                                    snapshot=True)
            while True:
                batch = await queue.get()
                if batch is None:  # the feed went down, or we fell behind
                    raise Unavailable("revocation feed interrupted")
                yield auth_pb2.WatchRevocationsResponse(session_ids=batch)
        finally:
            revocations.unwatch(queue)


def _caller(context: grpc.aio.ServicerContext, proxies: Networks) -> Caller:
    return caller(context.invocation_metadata(), context.peer(), proxies)


def _token_fields(pair: TokenPair) -> dict[str, Any]:
    return {"access_token": pair.access_token, "token_type": TOKEN_TYPE,
            "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
            "refresh_expires_in": pair.refresh_expires_in, "session_id": pair.session_id,
            "user_id": pair.user_id}


