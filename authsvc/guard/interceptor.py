"""Protect a gRPC server with authsvc access tokens in one line.

    verifier = LocalVerifier("authsvc:50051")        # or RemoteVerifier(...)
    server = grpc.aio.server(interceptors=[AsyncAuthInterceptor(verifier)])
    server = grpc.server(pool, interceptors=[AuthInterceptor(verifier)])   # sync

Every method needs a valid access token unless it is listed in ``public``
(exact full method names, ``/package.Service/Method``; by default gRPC
health checking and server reflection). The token is the single
``authorization: Bearer …`` metadata value (scheme case-insensitive; two
values or another scheme are refused as TOKEN_INVALID). ``scopes`` maps a
service (``package.Service``) or a method (``/package.Service/Method``) to the
scopes it needs; a method needs those of its service and its own.

Step-up (RFC 9470): ``require_amr`` maps a service or method to amr values of
which the token must carry at least one (e.g. ``("otp", "hwk", "swk")``: any
second factor), and ``max_age`` to the most seconds since the user last
authenticated (the token's ``auth_time``, judged by ``clock``); a method's own
entry wins over its service's. A token that falls short is refused
UNAUTHENTICATED with reason INSUFFICIENT_USER_AUTHENTICATION and a challenge
``error="insufficient_user_authentication"`` with ``acr_values="aal2"`` and/or
``max_age``, so the client knows to sign in again with the factor; a token
without amr or auth_time (issued before second factors existed) falls short.

Refusals carry the status, ``google.rpc.ErrorInfo`` and RFC 6750
``www-authenticate`` trailer that authsvc itself sends (one mapping:
``authsvc.guard.status.describe``): UNAUTHENTICATED with TOKEN_MISSING,
TOKEN_INVALID, TOKEN_EXPIRED or TOKEN_REVOKED; PERMISSION_DENIED with
INSUFFICIENT_SCOPE and ``error="insufficient_scope"``; UNAVAILABLE when the
verifier cannot decide (it fails closed). Each refusal is built once per kind
of failure and reused.

Handlers read the verified claims with ``current_claims()`` (or
``claims_var.get()``, None in public methods). The claims are set in the
context the handler runs in, for unary and streaming, async and sync
handlers alike, and never leak into another call.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from ..core.tokens import AccessClaims
from ..errors import (
    ClientError,
    InsufficientUserAuthentication,
    PermissionDenied,
    TokenMissing,
    Unavailable,
)
from .bearer import bearer_token
from .handlers import Behavior, Handler, Kind, handler_of, kind_of, wrap_rpc_behavior
from .status import Trailers, describe
from .verifier import Verifier

log = logging.getLogger(__name__)

claims_var: ContextVar[AccessClaims | None] = ContextVar("authsvc_claims", default=None)

DEFAULT_PUBLIC = frozenset({
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/List",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
})


def current_claims() -> AccessClaims:
    """The verified claims of the call being handled.

    Raises LookupError in a public method or outside a call that passed
    the interceptor.
    """
    claims = claims_var.get()
    if claims is None:
        raise LookupError("no verified access token in this context (public method, or "
                          "the server has no authsvc interceptor)")
    return claims


def methods_of(service: ServiceDescriptor) -> frozenset[str]:
    """Every full method name of ``service``, e.g. to make a whole service public."""
    return frozenset(f"/{service.full_name}/{method.name}" for method in service.methods)


@dataclass(frozen=True, slots=True)
class StepUp:
    """What a method asks of the user's authentication (RFC 9470): at least one of
    ``amr``, and at most ``max_age`` seconds since the user authenticated."""

    amr: tuple[str, ...] = ()
    max_age: int | None = None

    def check(self, claims: AccessClaims, now: float) -> None:
        short_amr = bool(self.amr) and not set(self.amr).intersection(claims.amr)
        stale = self.max_age is not None and (
            claims.auth_time is None or now - claims.auth_time > self.max_age)
        if short_amr or stale:
            raise InsufficientUserAuthentication(self.amr, self.max_age)


_NO_STEP_UP = StepUp()


def _check_name(name: str, what: str) -> None:
    method = name.startswith("/") and name.count("/") == 2
    if not (method or (name and "/" not in name)):
        raise ValueError(f"{what} key {name!r} is neither package.Service nor "
                         "/package.Service/Method")


class _Policy:
    """Which methods are public, which scopes the others need, and their step-up."""

    def __init__(self, public: Iterable[str], scopes: Mapping[str, Iterable[str]],
                 require_amr: Mapping[str, Iterable[str]] | None = None,
                 max_age: Mapping[str, int] | None = None) -> None:
        self._amr = {name: tuple(values) for name, values in (require_amr or {}).items()}
        self._max_age = dict(max_age or {})
        for name in self._amr:
            _check_name(name, "require_amr")
        for name, seconds in self._max_age.items():
            _check_name(name, "max_age")
            if not isinstance(seconds, int) or seconds < 0:
                raise ValueError(f"max_age of {name!r} must be a number of seconds")
        self._step_ups: dict[str, StepUp] = {}
        self._public = frozenset(public)
        for name in self._public:
            if not (name.startswith("/") and name.count("/") == 2):
                raise ValueError(f"public method {name!r} is not /package.Service/Method")
        self._scopes = {name: tuple(wanted) for name, wanted in scopes.items()}
        for name in self._scopes:
            _check_name(name, "scopes")
        self._required: dict[str, tuple[str, ...] | None] = {}

    def required(self, method: str) -> tuple[str, ...] | None:
        """The scopes ``method`` needs; None when it is public. Only called for
        registered methods, so the memo stays as small as the server."""
        try:
            return self._required[method]
        except KeyError:
            pass
        needed: tuple[str, ...] | None = None
        if method not in self._public:
            service = method.lstrip("/").partition("/")[0]
            needed = tuple(dict.fromkeys(
                (*self._scopes.get(service, ()), *self._scopes.get(method, ()))))
        self._required[method] = needed
        return needed

    def step_up(self, method: str) -> StepUp:
        """What ``method`` asks of the user's authentication (memoised, as ``required``)."""
        found = self._step_ups.get(method)
        if found is None:
            service = method.lstrip("/").partition("/")[0]
            amr = self._amr.get(method, self._amr.get(service, ()))
            age = self._max_age.get(method, self._max_age.get(service))
            found = self._step_ups[method] = StepUp(amr, age) if amr or age is not None \
                else _NO_STEP_UP
        return found


def _check_scopes(claims: AccessClaims, required: tuple[str, ...]) -> AccessClaims:
    if any(scope not in claims.scopes for scope in required):
        raise PermissionDenied(required)
    return claims


@dataclass(frozen=True)
class _Status(grpc.Status):  # type: ignore[misc]
    code: grpc.StatusCode
    details: str
    trailing_metadata: Trailers


class _Rejections:
    """The status of each kind of failure, computed once with ``describe``."""

    def __init__(self) -> None:
        self._statuses: dict[tuple[Any, ...], _Status] = {}
        self._handlers: dict[tuple[Any, ...], Handler] = {}

    def status(self, exc: Exception) -> tuple[tuple[Any, ...], _Status]:
        if isinstance(exc, ClientError):
            key: tuple[Any, ...] = (type(exc), exc.message, getattr(exc, "scopes", None),
                                    getattr(exc, "amr", None), getattr(exc, "max_age", None))
        elif isinstance(exc, Unavailable):
            key = (Unavailable,)
        else:
            log.error("unexpected error while verifying a token", exc_info=exc)
            key = (Exception,)
        status = self._statuses.get(key)
        if status is None:
            status = self._statuses[key] = _Status(*describe(exc))
        return key, status

    def handler(self, kind: Kind, exc: Exception) -> Handler:
        """A grpc.aio handler of this method's kind that only refuses."""
        key, status = self.status(exc)
        handler = self._handlers.get((kind, *key))
        if handler is None:
            async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
                await context.abort(status.code, status.details,
                                    trailing_metadata=status.trailing_metadata)

            handler = self._handlers[(kind, *key)] = handler_of(kind, refuse)
        return handler


def _in_context(claims: AccessClaims, behavior: Behavior) -> Behavior:
    """``behavior`` run with ``claims_var`` set, in the same shape grpc dispatches on.

    Async behaviours run in the call's own asyncio task (a copied context), so
    setting the variable there reaches no other call. Sync behaviours run in a
    pool thread whose context outlives the call, so they get a fresh copy.
    """
    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: Any) -> Any:
            claims_var.set(claims)
            async for item in behavior(request, context):
                yield item
        return stream
    if inspect.iscoroutinefunction(behavior):
        async def call(request: Any, context: Any) -> Any:
            claims_var.set(claims)
            return await behavior(request, context)
        return call

    def sync(request: Any, context: Any) -> Any:
        ctx = contextvars.copy_context()
        ctx.run(claims_var.set, claims)
        result = ctx.run(behavior, request, context)
        return _iterate_in(ctx, result) if inspect.isgenerator(result) else result
    return sync


def _iterate_in(ctx: contextvars.Context, iterator: Iterator[Any]) -> Iterator[Any]:
    while True:
        try:
            item = ctx.run(next, iterator)
        except StopIteration:
            return
        yield item


class AsyncAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The interceptor for ``grpc.aio`` servers; verifies with ``verify_async``."""

    def __init__(self, verifier: Verifier, *, public: Iterable[str] = DEFAULT_PUBLIC,
                 scopes: Mapping[str, Iterable[str]] | None = None,
                 require_amr: Mapping[str, Iterable[str]] | None = None,
                 max_age: Mapping[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._verifier = verifier
        self._policy = _Policy(public, scopes or {}, require_amr, max_age)
        self._rejections = _Rejections()
        self._clock = clock

    async def intercept_service(
            self, continuation: Callable[[Any], Awaitable[Handler]],
            details: grpc.HandlerCallDetails) -> Handler:
        handler = await continuation(details)
        if handler is None:
            return None
        required = self._policy.required(details.method)
        if required is None:
            return handler
        try:
            token = bearer_token(details.invocation_metadata)
            if token is None:
                raise TokenMissing()
            claims = _check_scopes(await self._verifier.verify_async(token), required)
            self._policy.step_up(details.method).check(claims, self._clock())
        except Exception as exc:
            return self._rejections.handler(kind_of(handler), exc)
        return wrap_rpc_behavior(handler, lambda behavior, _kind: _in_context(claims, behavior))


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """The interceptor for sync ``grpc`` servers; verifies with ``verify``.

    Verification runs in the handler's pool thread, not on the server's
    single dispatch thread, so a slow verifier does not stall other calls.
    """

    def __init__(self, verifier: Verifier, *, public: Iterable[str] = DEFAULT_PUBLIC,
                 scopes: Mapping[str, Iterable[str]] | None = None,
                 require_amr: Mapping[str, Iterable[str]] | None = None,
                 max_age: Mapping[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._verifier = verifier
        self._policy = _Policy(public, scopes or {}, require_amr, max_age)
        self._rejections = _Rejections()
        self._clock = clock
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    def intercept_service(self, continuation: Callable[[Any], Handler],
                          details: grpc.HandlerCallDetails) -> Handler:
        handler = continuation(details)
        if handler is None:
            return None
        required = self._policy.required(details.method)
        if required is None:
            return handler
        guarded = self._guarded.get(details.method)
        if guarded is None or guarded[0] is not handler:  # built once per method
            step_up = self._policy.step_up(details.method)
            guarded = (handler, wrap_rpc_behavior(
                handler, lambda behavior, _kind: self._guard(behavior, required, step_up)))
            self._guarded[details.method] = guarded
        return guarded[1]

    def _guard(self, behavior: Behavior, required: tuple[str, ...], step_up: StepUp,
               ) -> Behavior:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                token = bearer_token(context.invocation_metadata())
                if token is None:
                    raise TokenMissing()
                claims = _check_scopes(self._verifier.verify(token), required)
                step_up.check(claims, self._clock())
            except Exception as exc:
                context.abort_with_status(self._rejections.status(exc)[1])
                raise AssertionError("unreachable: abort raises") from exc
            return _in_context(claims, behavior)(request, context)
        return guarded
