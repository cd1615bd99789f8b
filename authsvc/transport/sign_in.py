"""The public Auth methods: signing in (password, second factor, passkey), refresh,
and the accounts flows a person uses before they have a token. None reads a
bearer token (``transport.door``)."""

from __future__ import annotations

from typing import TypeVar

import grpc

from ..domain.accounts.self_service import SelfService
from ..domain.factors.attempts import Attempt
from ..domain.factors.mfa import SecondFactorSignIn
from ..domain.factors.passkeys import Passkeys
from ..domain.sessions.opener import SecondFactorRequired, SignedIn
from ..domain.sessions.refresh import Refresh
from ..domain.sessions.signin import SignIn
from ..errors import MfaRequired
from ..v1 import auth_pb2
from .convert import Callers, identifier, token_fields


def signed_in(answer: SignedIn | SecondFactorRequired) -> SignedIn:
    """A sign-in's session; a sign-in that waits for its second factor is answered
    UNAUTHENTICATED reason MFA_REQUIRED, with the ``mfa_token``, the factors and the
    token's lifetime in the ErrorInfo metadata."""
    return signed_in_tokens(answer)


T = TypeVar("T")


def signed_in_tokens(answer: T | SecondFactorRequired) -> T:
    """Any sign-in's answer; one that waits for its second factor is MFA_REQUIRED."""
    if isinstance(answer, SecondFactorRequired):
        raise MfaRequired(answer.mfa_token, answer.factors, answer.expires_in)
    return answer


class SignInMethods:
    def __init__(self, sign_in: SignIn, refresh: Refresh, second_factor: SecondFactorSignIn,
                 passkeys: Passkeys, self_service: SelfService, callers: Callers) -> None:
        self._sign_in = sign_in
        self._refresh = refresh
        self._second_factor = second_factor
        self._passkeys = passkeys
        self._self = self_service
        self._caller = callers

    async def SignIn(self, request: auth_pb2.SignInRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.SignInResponse:
        kind, value = identifier(request)
        done = signed_in(await self._sign_in.sign_in(kind, value, request.password,
                                                     self._caller(context),
                                                     request.device_token))
        return auth_pb2.SignInResponse(**token_fields(done.tokens),
                                       device_token=done.device_token)

    async def Refresh(self, request: auth_pb2.RefreshRequest,
                      context: grpc.aio.ServicerContext) -> auth_pb2.RefreshResponse:
        pair = await self._refresh.refresh(request.refresh_token, self._caller(context))
        return auth_pb2.RefreshResponse(**token_fields(pair))

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
        return auth_pb2.CompleteSignInResponse(**token_fields(pair))

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
        return auth_pb2.PasskeySignInResponse(**token_fields(pair))

    async def SignUp(self, request: auth_pb2.SignUpRequest,
                     context: grpc.aio.ServicerContext) -> auth_pb2.SignUpResponse:
        kind, value = identifier(request)
        answer = await self._self.sign_up.sign_up(kind, value, request.password,
                                                  self._caller(context))
        if answer is None:
            return auth_pb2.SignUpResponse()
        return auth_pb2.SignUpResponse(**token_fields(signed_in(answer).tokens))

    async def VerifyIdentifier(self, request: auth_pb2.VerifyIdentifierRequest,
                               context: grpc.aio.ServicerContext,
                               ) -> auth_pb2.VerifyIdentifierResponse:
        kind, value = identifier(request)
        await self._self.verification.verify(kind, value, request.code, self._caller(context))
        return auth_pb2.VerifyIdentifierResponse()

    async def ResendVerification(self, request: auth_pb2.ResendVerificationRequest,
                                 context: grpc.aio.ServicerContext,
                                 ) -> auth_pb2.ResendVerificationResponse:
        kind, value = identifier(request)
        await self._self.verification.resend(kind, value, self._caller(context))
        return auth_pb2.ResendVerificationResponse()

    async def RequestPasswordReset(self, request: auth_pb2.RequestPasswordResetRequest,
                                   context: grpc.aio.ServicerContext,
                                   ) -> auth_pb2.RequestPasswordResetResponse:
        kind, value = identifier(request)
        await self._self.password_reset.request(kind, value, self._caller(context))
        return auth_pb2.RequestPasswordResetResponse()

    async def ResetPassword(self, request: auth_pb2.ResetPasswordRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> auth_pb2.ResetPasswordResponse:
        kind, value = identifier(request)
        await self._self.password_reset.reset(kind, value, request.code,
                                              request.new_password, self._caller(context))
        return auth_pb2.ResetPasswordResponse()
