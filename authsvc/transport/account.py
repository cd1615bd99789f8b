"""The Auth methods of the caller's own account: password and second factors. Each
needs a bearer token, and those that change a factor or the password a fresh
second factor (``transport.door``); the verified claims are ``current_claims()``."""

from __future__ import annotations

import grpc

from ..core.b64 import b64url
from ..domain.accounts.self_service import SelfService
from ..domain.factors.otp import Factors
from ..domain.factors.passkeys import Passkeys
from ..guard.interceptor import current_claims
from ..v1 import auth_pb2
from .convert import Callers, timestamp


class AccountMethods:
    def __init__(self, self_service: SelfService, factors: Factors, passkeys: Passkeys,
                 callers: Callers) -> None:
        self._self = self_service
        self._factors = factors
        self._passkeys = passkeys
        self._caller = callers

    async def ChangePassword(self, request: auth_pb2.ChangePasswordRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> auth_pb2.ChangePasswordResponse:
        await self._self.change_password.change(current_claims(), request.current_password,
                                                request.new_password, self._caller(context))
        return auth_pb2.ChangePasswordResponse()

    async def EnrollTotp(self, request: auth_pb2.EnrollTotpRequest,
                         context: grpc.aio.ServicerContext) -> auth_pb2.EnrollTotpResponse:
        enrolment = await self._factors.enroll_totp(current_claims(), self._caller(context))
        return auth_pb2.EnrollTotpResponse(secret=enrolment.secret, uri=enrolment.uri)

    async def ConfirmTotp(self, request: auth_pb2.ConfirmTotpRequest,
                          context: grpc.aio.ServicerContext) -> auth_pb2.ConfirmTotpResponse:
        codes = await self._factors.confirm_totp(current_claims(), request.code,
                                                 self._caller(context))
        return auth_pb2.ConfirmTotpResponse(recovery_codes=codes)

    async def RemoveTotp(self, request: auth_pb2.RemoveTotpRequest,
                         context: grpc.aio.ServicerContext) -> auth_pb2.RemoveTotpResponse:
        await self._factors.remove_totp(current_claims(), self._caller(context))
        return auth_pb2.RemoveTotpResponse()

    async def RegenerateRecoveryCodes(self, request: auth_pb2.RegenerateRecoveryCodesRequest,
                                      context: grpc.aio.ServicerContext,
                                      ) -> auth_pb2.RegenerateRecoveryCodesResponse:
        codes = await self._factors.regenerate_recovery_codes(current_claims(),
                                                              self._caller(context))
        return auth_pb2.RegenerateRecoveryCodesResponse(recovery_codes=codes)

    async def ListFactors(self, request: auth_pb2.ListFactorsRequest,
                          context: grpc.aio.ServicerContext) -> auth_pb2.ListFactorsResponse:
        found = await self._factors.summary(current_claims())
        return auth_pb2.ListFactorsResponse(totp=found.totp,
                                            recovery_codes_left=found.recovery_codes,
                                            passkeys=found.passkeys)

    async def BeginPasskeyRegistration(self, request: auth_pb2.BeginPasskeyRegistrationRequest,
                                       context: grpc.aio.ServicerContext,
                                       ) -> auth_pb2.BeginPasskeyRegistrationResponse:
        ceremony_id, options = await self._passkeys.begin_registration(current_claims())
        return auth_pb2.BeginPasskeyRegistrationResponse(ceremony_id=ceremony_id,
                                                         options_json=options)

    async def FinishPasskeyRegistration(
            self, request: auth_pb2.FinishPasskeyRegistrationRequest,
            context: grpc.aio.ServicerContext) -> auth_pb2.FinishPasskeyRegistrationResponse:
        credential_id, codes = await self._passkeys.finish_registration(
            current_claims(), request.ceremony_id, request.credential_json, request.name,
            self._caller(context))
        return auth_pb2.FinishPasskeyRegistrationResponse(credential_id=credential_id,
                                                          recovery_codes=codes)

    async def ListPasskeys(self, request: auth_pb2.ListPasskeysRequest,
                           context: grpc.aio.ServicerContext) -> auth_pb2.ListPasskeysResponse:
        passkeys = []
        for credential in await self._passkeys.list(current_claims()):
            passkey = auth_pb2.Passkey(credential_id=b64url(credential.id), name=credential.name,
                                       created_at=timestamp(credential.created_at),
                                       synced=credential.synced)
            if credential.last_used_at is not None:
                passkey.last_used_at.CopyFrom(timestamp(credential.last_used_at))
            passkeys.append(passkey)
        return auth_pb2.ListPasskeysResponse(passkeys=passkeys)

    async def RemovePasskey(self, request: auth_pb2.RemovePasskeyRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> auth_pb2.RemovePasskeyResponse:
        await self._passkeys.remove(current_claims(), request.credential_id,
                                    self._caller(context))
        return auth_pb2.RemovePasskeyResponse()
