"""The one door: who may call each method of authsvc's own server, declared once.

Every method authsvc serves has exactly one ``Rule`` in ``POLICY`` (a test
enumerates the protos and fails when one has none); a method missing from the
table is refused at run time, never let through. The ``Door`` interceptor
enforces the table before any servicer runs, so a use case receives verified
claims (``current_claims()``), never a bearer string, and no RPC can forget a
check:

- **public**: no token is read (sign-in, refresh, sign-up, the key set ...).
  Validate is public too: the token it is given is its subject, not its
  caller's credential.
- **bearer**: exactly one ``authorization: Bearer`` access token, verified
  in-process (signature, time claims, revocation), with the rule's scopes.
- **bearer + fresh second factor** (RFC 9470 step-up): the token's amr must
  name a second factor (otp, hwk, swk) and its auth_time be at most
  ``AUTHSVC_STEP_UP_MAX_AGE`` old; else UNAUTHENTICATED
  INSUFFICIENT_USER_AUTHENTICATION, which tells the client to sign in again
  with the factor. ``ALWAYS`` for removing a factor or its recovery codes;
  ``IF_ENROLLED`` (when the user has any second factor, read from the
  database at the call) for adding a factor and for changing the password. So
  a stolen password-only session can neither strip a factor nor add its own
  once the user has one. Adding a factor also ends every other enrolment of
  the user still pending (``domain.factors.otp``): one begun under a weaker state
  cannot be finished after it.

A rule's ``when`` makes the token depend on the request (Revoke needs one
only to end all sessions); ``client_certificate`` lets a verified mutual-TLS
client certificate stand in for the bearer (the revocation feed).

Signing out everywhere (Revoke with all_sessions) needs a valid token but no
fresh second factor, a decision: it only takes access away, and it is the
remedy of a user whose session was stolen, who must not be told to find their
second factor first.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from ..clock import Clock
from ..core.tokens import SECOND_FACTORS, AccessClaims
from ..domain.tokens.validator import Validator
from ..errors import PermissionDenied, TokenMissing
from ..guard.bearer import bearer_token
from ..guard.handlers import Behavior, Handler, Kind, wrap_rpc_behavior
from ..guard.interceptor import StepUp, claims_var, methods_of
from ..v1 import user_admin_pb2

log = logging.getLogger(__name__)

ADMIN_SCOPE = "authsvc.admin"
# The scope a caller of IntrospectRefreshToken needs (the gateway's RFC 7662
# endpoint forwards its caller's bearer).
INTROSPECT_SCOPE = "authsvc.introspect"
# The scope a verifier's service account needs to follow WatchRevocations.
WATCH_SCOPE = "authsvc.revocations"


class SecondFactor(enum.Enum):
    """When a fresh second factor must have taken part in the token's sign-in."""

    NOT_NEEDED = "not_needed"
    IF_ENROLLED = "if_enrolled"  # when the user has any second factor
    ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class Rule:
    bearer: bool = False
    scopes: tuple[str, ...] = ()
    second_factor: SecondFactor = SecondFactor.NOT_NEEDED
    when: Callable[[Any], bool] | None = None  # the bearer is needed only where it holds
    client_certificate: bool = False  # a verified mTLS client certificate admits too


PUBLIC = Rule()
BEARER = Rule(bearer=True)
ADDS_FACTOR = Rule(bearer=True, second_factor=SecondFactor.IF_ENROLLED)
REMOVES_FACTOR = Rule(bearer=True, second_factor=SecondFactor.ALWAYS)


def _auth(name: str) -> str:
    return f"/authsvc.v1.Auth/{name}"


_USER_ADMIN = user_admin_pb2.DESCRIPTOR.services_by_name["UserAdmin"]

POLICY: Mapping[str, Rule] = {
    # Signing in, and what a client needs before it has a token.
    _auth("SignIn"): PUBLIC,
    _auth("Refresh"): PUBLIC,
    _auth("CompleteSignIn"): PUBLIC,  # the mfa_token is the credential
    _auth("BeginPasskeyAssertion"): PUBLIC,
    _auth("PasskeySignIn"): PUBLIC,
    _auth("SignUp"): PUBLIC,
    _auth("VerifyIdentifier"): PUBLIC,  # the code is the credential
    _auth("ResendVerification"): PUBLIC,
    _auth("RequestPasswordReset"): PUBLIC,
    _auth("ResetPassword"): PUBLIC,  # the code is the credential
    _auth("StartProviderSignIn"): PUBLIC,
    _auth("FinishProviderSignIn"): PUBLIC,  # the flow_id, state and code are the credential
    # Token services.
    _auth("Validate"): PUBLIC,  # the token is the subject, not the caller's credential
    _auth("GetJwks"): PUBLIC,
    _auth("Revoke"): Rule(bearer=True, when=lambda request: bool(request.all_sessions)),
    _auth("WatchRevocations"): Rule(bearer=True, scopes=(WATCH_SCOPE,),
                                    client_certificate=True),
    _auth("IntrospectRefreshToken"): Rule(bearer=True, scopes=(INTROSPECT_SCOPE,)),
    # The caller's own account.
    _auth("ChangePassword"): ADDS_FACTOR,  # the password is a factor too
    _auth("ListFactors"): BEARER,
    _auth("ListPasskeys"): BEARER,
    _auth("EnrollTotp"): ADDS_FACTOR,
    _auth("ConfirmTotp"): ADDS_FACTOR,
    _auth("BeginPasskeyRegistration"): ADDS_FACTOR,
    _auth("FinishPasskeyRegistration"): ADDS_FACTOR,
    _auth("RemoveTotp"): REMOVES_FACTOR,
    _auth("RegenerateRecoveryCodes"): REMOVES_FACTOR,  # voids the codes the user holds
    _auth("RemovePasskey"): REMOVES_FACTOR,
    # Identities of other providers: adding or removing a way to sign in is a change
    # of credentials, like the password's (a fresh second factor when there is one).
    _auth("ListIdentities"): BEARER,
    _auth("LinkIdentity"): ADDS_FACTOR,
    _auth("UnlinkIdentity"): ADDS_FACTOR,
    # Administration.
    **{method: Rule(bearer=True, scopes=(ADMIN_SCOPE,)) for method in methods_of(_USER_ADMIN)},
    # Probes and tools.
    **{f"/{health.SERVICE_NAME}/{name}": PUBLIC for name in ("Check", "List", "Watch")},
    **{f"/{name}/ServerReflectionInfo": PUBLIC
       for name in (reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection")},
}


def unlisted(methods: Iterable[str], policy: Mapping[str, Rule] = POLICY) -> list[str]:
    """The methods among ``methods`` that have no rule."""
    return sorted(set(methods) - set(policy))


class Door(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Enforces ``policy`` in front of every servicer; errors leave through the one
    mapping of the call interceptor outside it."""

    def __init__(self, validator: Validator, enrolled: Callable[[str], Awaitable[bool]],
                 clock: Clock, *, step_up_max_age: int, mutual_tls: bool,
                 policy: Mapping[str, Rule] = POLICY) -> None:
        self._validator = validator
        self._enrolled = enrolled
        self._clock = clock
        self._fresh = StepUp(tuple(sorted(SECOND_FACTORS)), step_up_max_age)
        self._mutual_tls = mutual_tls
        self._policy = policy
        self._guarded_handlers: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
            details: grpc.HandlerCallDetails) -> Handler:
        handler = await continuation(details)
        if handler is None:
            return None
        rule = self._policy.get(details.method)
        if rule is PUBLIC:
            return handler
        if rule is None:
            log.error("refused a method the door has no rule for", extra={"fields": {
                "method": details.method}})

        known = self._guarded_handlers.get(details.method)
        if known is not None and known[0] is handler:
            return known[1]

        def wrap(behavior: Behavior, _kind: Kind) -> Behavior:
            return self._guarded(rule, behavior)

        # Made once per method and handler: the rule and the servicer do not change.
        guarded = wrap_rpc_behavior(handler, wrap)
        self._guarded_handlers[details.method] = (handler, guarded)
        return guarded

    def _guarded(self, rule: Rule | None, behavior: Behavior) -> Behavior:
        if inspect.isasyncgenfunction(behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext,
                             ) -> AsyncIterator[Any]:
                claims_var.set(await self.admit(rule, request, context))
                async for item in behavior(request, context):
                    yield item
            return stream

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            claims_var.set(await self.admit(rule, request, context))
            return await behavior(request, context)
        return unary

    async def admit(self, rule: Rule | None, request: Any,
                    context: grpc.aio.ServicerContext) -> AccessClaims | None:
        """The caller's verified claims (None where the rule asks for no token), or
        the refusal."""
        if rule is None:
            raise PermissionDenied(())
        if not rule.bearer or (rule.when is not None and not rule.when(request)):
            return None
        if rule.client_certificate and self._mutual_tls and \
                "x509_pem_cert" in (context.auth_context() or {}):
            return None
        token = bearer_token(context.invocation_metadata())
        if token is None:
            raise TokenMissing()
        claims = await self._validator.validate(token)
        if any(scope not in claims.scopes for scope in rule.scopes):
            raise PermissionDenied(rule.scopes)
        if rule.second_factor is SecondFactor.ALWAYS or (
                rule.second_factor is SecondFactor.IF_ENROLLED
                and await self._enrolled(claims.user_id)):
            self._fresh.check(claims, self._clock())
        return claims
