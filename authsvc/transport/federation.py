"""The Auth methods of signing in with another identity provider: Start and Finish
(public: the flow_id, state and code are the credential) and the caller's linked
identities (bearer; linking and unlinking with a fresh second factor when the user
has one, ``transport.door``)."""

from __future__ import annotations

from dataclasses import asdict

import grpc

from ..domain.federation.flows import Federation
from ..guard.interceptor import current_claims
from ..v1 import auth_pb2
from .convert import Callers, timestamp, token_fields
from .sign_in import signed_in_tokens


class FederationMethods:
    def __init__(self, federation: Federation, callers: Callers) -> None:
        self._federation = federation
        self._caller = callers

    async def StartProviderSignIn(self, request: auth_pb2.StartProviderSignInRequest,
                                  context: grpc.aio.ServicerContext,
                                  ) -> auth_pb2.StartProviderSignInResponse:
        started = await self._federation.start(request.provider, request.redirect_uri,
                                               request.code_challenge, request.redirect_to)
        return auth_pb2.StartProviderSignInResponse(**asdict(started))

    async def FinishProviderSignIn(self, request: auth_pb2.FinishProviderSignInRequest,
                                   context: grpc.aio.ServicerContext,
                                   ) -> auth_pb2.FinishProviderSignInResponse:
        answer = await self._federation.finish(
            request.provider, request.flow_id, request.state, request.code, request.iss,
            request.code_verifier, request.error, self._caller(context))
        finished = signed_in_tokens(answer)
        if finished.tokens is None:
            return auth_pb2.FinishProviderSignInResponse(
                redirect_to=finished.redirect_to or "", linked=True)
        return auth_pb2.FinishProviderSignInResponse(
            **token_fields(finished.tokens), redirect_to=finished.redirect_to or "",
            created=finished.created)

    async def LinkIdentity(self, request: auth_pb2.LinkIdentityRequest,
                           context: grpc.aio.ServicerContext) -> auth_pb2.LinkIdentityResponse:
        started = await self._federation.start_link(current_claims(), request.provider,
                                                    request.redirect_uri,
                                                    request.code_challenge, request.redirect_to)
        return auth_pb2.LinkIdentityResponse(**asdict(started))

    async def UnlinkIdentity(self, request: auth_pb2.UnlinkIdentityRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> auth_pb2.UnlinkIdentityResponse:
        await self._federation.unlink(current_claims(), request.provider, request.subject,
                                      self._caller(context))
        return auth_pb2.UnlinkIdentityResponse()

    async def ListIdentities(self, request: auth_pb2.ListIdentitiesRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> auth_pb2.ListIdentitiesResponse:
        found = await self._federation.list(current_claims())
        return auth_pb2.ListIdentitiesResponse(identities=[
            auth_pb2.Identity(provider=i.provider, subject=i.subject, email=i.email or "",
                              created_at=timestamp(i.created_at.timestamp()))
            for i in found])

