"""The Auth methods of second factors (issue 16), mixed into ``AuthServicer``: a
thin layer from protobuf to ``domain.factors`` and ``domain.mfa``. The factor
methods take the caller's bearer token from the metadata (the Auth service is
public in authsvc's own interceptor, as Revoke's all_sessions is)."""

from __future__ import annotations

from typing import Any

import grpc

from ..domain.caller import Caller
from ..domain.factors import Attempt, Factors
from ..domain.mfa import SecondFactorSignIn
from ..guard.bearer import bearer_token
from ..v1 import auth_pb2

TOKEN_TYPE = "Bearer"  # noqa: S105 (the OAuth token_type, not a secret)


class FactorMethods:
    """Needs ``_factors``, ``_second_factor`` and ``_caller`` from the servicer."""

    _factors: Factors
    _second_factor: SecondFactorSignIn

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        raise NotImplementedError

    async def CompleteSignIn(self, request: auth_pb2.CompleteSignInRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> auth_pb2.CompleteSignInResponse:
        which = request.WhichOneof("factor")
        attempt = Attempt(totp=request.totp if which == "totp" else None,
                          recovery_code=request.recovery_code
                          if which == "recovery_code" else None)
        pair = await self._second_factor.complete(request.mfa_token, attempt,
                                                  self._caller(context))
        fields: dict[str, Any] = {
            "access_token": pair.access_token, "token_type": TOKEN_TYPE,
            "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
            "refresh_expires_in": pair.refresh_expires_in, "session_id": pair.session_id,
            "user_id": pair.user_id}
        return auth_pb2.CompleteSignInResponse(**fields)

    async def EnrollTotp(self, request: auth_pb2.EnrollTotpRequest,
                         context: grpc.aio.ServicerContext) -> auth_pb2.EnrollTotpResponse:
        enrolment = await self._factors.enroll_totp(_bearer(context), self._caller(context))
        return auth_pb2.EnrollTotpResponse(secret=enrolment.secret, uri=enrolment.uri)

    async def ConfirmTotp(self, request: auth_pb2.ConfirmTotpRequest,
                          context: grpc.aio.ServicerContext) -> auth_pb2.ConfirmTotpResponse:
        codes = await self._factors.confirm_totp(_bearer(context), request.code,
                                                 self._caller(context))
        return auth_pb2.ConfirmTotpResponse(recovery_codes=codes)

    async def RemoveTotp(self, request: auth_pb2.RemoveTotpRequest,
                         context: grpc.aio.ServicerContext) -> auth_pb2.RemoveTotpResponse:
        await self._factors.remove_totp(_bearer(context), self._caller(context))
        return auth_pb2.RemoveTotpResponse()

    async def RegenerateRecoveryCodes(self, request: auth_pb2.RegenerateRecoveryCodesRequest,
                                      context: grpc.aio.ServicerContext,
                                      ) -> auth_pb2.RegenerateRecoveryCodesResponse:
        codes = await self._factors.regenerate_recovery_codes(_bearer(context),
                                                              self._caller(context))
        return auth_pb2.RegenerateRecoveryCodesResponse(recovery_codes=codes)

    async def ListFactors(self, request: auth_pb2.ListFactorsRequest,
                          context: grpc.aio.ServicerContext) -> auth_pb2.ListFactorsResponse:
        totp, codes_left = await self._factors.summary(_bearer(context))
        return auth_pb2.ListFactorsResponse(totp=totp, recovery_codes_left=codes_left)


def _bearer(context: grpc.aio.ServicerContext) -> str | None:
    return bearer_token(context.invocation_metadata())
