"""The Auth methods of second factors (issue 16), mixed into ``AuthServicer``: a
thin layer from protobuf to ``domain.factors`` and ``domain.mfa``. The factor
methods take the caller's bearer token from the metadata (the Auth service is
public in authsvc's own interceptor, as Revoke's all_sessions is)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..domain.caller import Caller
from ..domain.factors import Attempt, Factors
from ..domain.issuer import TokenPair
from ..domain.mfa import SecondFactorSignIn
from ..domain.passkeys import Passkeys, b64url
from ..guard.bearer import bearer_token
from ..v1 import auth_pb2

TOKEN_TYPE = "Bearer"  # noqa: S105 (the OAuth token_type, not a secret)


class FactorMethods:
    """Needs ``_factors``, ``_second_factor``, ``_passkeys`` and ``_caller`` from the
    servicer."""

    _factors: Factors
    _second_factor: SecondFactorSignIn
    _passkeys: Passkeys

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        raise NotImplementedError

    async def CompleteSignIn(self, request: auth_pb2.CompleteSignInRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> auth_pb2.CompleteSignInResponse:
        which = request.WhichOneof("factor")
        attempt = Attempt(
            totp=request.totp if which == "totp" else None,
            recovery_code=request.recovery_code if which == "recovery_code" else None,
            passkey=(request.passkey.ceremony_id, request.passkey.credential_json)
            if which == "passkey" else None)
        pair = await self._second_factor.complete(request.mfa_token, attempt,
                                                  self._caller(context))
        return auth_pb2.CompleteSignInResponse(**_token_fields(pair))

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
        found = await self._factors.summary(_bearer(context))
        return auth_pb2.ListFactorsResponse(totp=found.totp,
                                            recovery_codes_left=found.recovery_codes,
                                            passkeys=found.passkeys)

    async def BeginPasskeyRegistration(self, request: auth_pb2.BeginPasskeyRegistrationRequest,
                                       context: grpc.aio.ServicerContext,
                                       ) -> auth_pb2.BeginPasskeyRegistrationResponse:
        ceremony_id, options = await self._passkeys.begin_registration(_bearer(context))
        return auth_pb2.BeginPasskeyRegistrationResponse(ceremony_id=ceremony_id,
                                                         options_json=options)

    async def FinishPasskeyRegistration(
            self, request: auth_pb2.FinishPasskeyRegistrationRequest,
            context: grpc.aio.ServicerContext) -> auth_pb2.FinishPasskeyRegistrationResponse:
        credential_id, codes = await self._passkeys.finish_registration(
            _bearer(context), request.ceremony_id, request.credential_json, request.name,
            self._caller(context))
        return auth_pb2.FinishPasskeyRegistrationResponse(credential_id=credential_id,
                                                          recovery_codes=codes)

    async def BeginPasskeyAssertion(self, request: auth_pb2.BeginPasskeyAssertionRequest,
                                    context: grpc.aio.ServicerContext,
                                    ) -> auth_pb2.BeginPasskeyAssertionResponse:
        ceremony_id, options = await self._passkeys.begin_assertion(request.mfa_token)
        return auth_pb2.BeginPasskeyAssertionResponse(ceremony_id=ceremony_id,
                                                      options_json=options)

    async def PasskeySignIn(self, request: auth_pb2.PasskeySignInRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> auth_pb2.PasskeySignInResponse:
        pair = await self._passkeys.sign_in(request.assertion.ceremony_id,
                                            request.assertion.credential_json,
                                            self._caller(context))
        return auth_pb2.PasskeySignInResponse(**_token_fields(pair))

    async def ListPasskeys(self, request: auth_pb2.ListPasskeysRequest,
                           context: grpc.aio.ServicerContext) -> auth_pb2.ListPasskeysResponse:
        found = await self._passkeys.list(_bearer(context))
        passkeys = []
        for credential in found:
            passkey = auth_pb2.Passkey(credential_id=b64url(credential.id), name=credential.name,
                                       created_at=_timestamp(credential.created_at),
                                       synced=credential.synced)
            if credential.last_used_at is not None:
                passkey.last_used_at.CopyFrom(_timestamp(credential.last_used_at))
            passkeys.append(passkey)
        return auth_pb2.ListPasskeysResponse(passkeys=passkeys)

    async def RemovePasskey(self, request: auth_pb2.RemovePasskeyRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> auth_pb2.RemovePasskeyResponse:
        await self._passkeys.remove(_bearer(context), request.credential_id,
                                    self._caller(context))
        return auth_pb2.RemovePasskeyResponse()


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _token_fields(pair: TokenPair) -> dict[str, Any]:
    return {"access_token": pair.access_token, "token_type": TOKEN_TYPE,
            "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
            "refresh_expires_in": pair.refresh_expires_in, "session_id": pair.session_id,
            "user_id": pair.user_id}


def _bearer(context: grpc.aio.ServicerContext) -> str | None:
    return bearer_token(context.invocation_metadata())
