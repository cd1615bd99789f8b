"""The one mapping of authsvc errors to gRPC status, and back.

authsvc's server, the interceptor other services run and the verifiers all
answer through ``describe``; ``reason_of`` reads the ErrorInfo reason of a
failed call. Each client error becomes its code with a ``google.rpc.ErrorInfo`` (domain
"authsvc", the error's reason) and, where it helps, BadRequest or RetryInfo
details. Every UNAUTHENTICATED answer carries an RFC 6750 ``www-authenticate``
trailer. Messages are fixed text from ``authsvc.errors``, never user input.
Anything unexpected is answered INTERNAL with a generic message, because
grpc.aio would otherwise send the exception's text to the client.
"""

from __future__ import annotations

import math
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import (
    AlreadyExists,
    AuthsvcError,
    ClientError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
    RateLimited,
    SignUpDisabled,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    Unauthenticated,
    Unavailable,
)

DOMAIN = "authsvc"
REALM = "authsvc"
Trailers = tuple[tuple[str, str | bytes], ...]


def challenge(error: str | None = None, description: str | None = None,
              scope: str | None = None, params: tuple[tuple[str, str], ...] = ()) -> str:
    """An RFC 6750 ``WWW-Authenticate`` value (``params``: further auth-params, such
    as RFC 9470's acr_values and max_age). Callers pass fixed text only."""
    parts = [f'realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{error}"')
        if description is not None:
            parts.append(f'error_description="{description}"')
    if scope is not None:
        parts.append(f'scope="{scope}"')
    parts.extend(f'{name}="{value}"' for name, value in params)
    return "Bearer " + ", ".join(parts)


def describe(exc: BaseException) -> tuple[grpc.StatusCode, str, Trailers]:
    """The status code, message and trailing metadata for an exception."""
    if isinstance(exc, ClientError):
        code, extra, trailers = _client_error(exc)
        info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN,
                                           metadata=exc.metadata)
        details = [info, *extra]
        return code, exc.message, _with_details(code, exc.message, details) + trailers
    if isinstance(exc, Unavailable):
        message = "The service is temporarily unavailable; retry shortly."
        return grpc.StatusCode.UNAVAILABLE, message, ()
    return grpc.StatusCode.INTERNAL, "Internal error.", ()


def _client_error(exc: ClientError) -> tuple[grpc.StatusCode, list[Any], Trailers]:
    if isinstance(exc, Unauthenticated):
        value = challenge(exc.error, exc.message.rstrip(".") if exc.error else None,
                          params=exc.challenge_params)
        return grpc.StatusCode.UNAUTHENTICATED, [], (("www-authenticate", value),)
    if isinstance(exc, InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=exc.description)
        return (grpc.StatusCode.INVALID_ARGUMENT,
                [error_details_pb2.BadRequest(field_violations=[violation])], ())
    if isinstance(exc, AlreadyExists):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description="already taken by another user")
        return (grpc.StatusCode.ALREADY_EXISTS,
                [error_details_pb2.BadRequest(field_violations=[violation])], ())
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, [], ()
    if isinstance(exc, PermissionDenied):
        value = challenge("insufficient_scope", exc.message.rstrip("."),
                          " ".join(exc.scopes) or None)
        return grpc.StatusCode.PERMISSION_DENIED, [], (("www-authenticate", value),)
    if isinstance(exc, SignUpDisabled):
        return grpc.StatusCode.PERMISSION_DENIED, [], ()
    if isinstance(exc, ProviderUnavailable):
        return grpc.StatusCode.UNAVAILABLE, [], ()
    if isinstance(exc, RateLimited):
        seconds = max(1, math.ceil(exc.retry_after))
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
        return grpc.StatusCode.RESOURCE_EXHAUSTED, [info], ()
    return grpc.StatusCode.FAILED_PRECONDITION, [], ()


def _with_details(code: grpc.StatusCode, message: str, details: list[Any]) -> Trailers:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message,
                               details=packed)
    return tuple(rpc_status.to_status(status).trailing_metadata)


def reason_of(error: grpc.RpcError) -> str | None:
    """The ErrorInfo reason of a failed call, if it carries one."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return None


_TOKEN_ERRORS: dict[str, type[AuthsvcError]] = {
    cls.reason: cls for cls in (TokenMissing, TokenInvalid, TokenExpired, TokenRevoked)}


def token_error_of(error: grpc.RpcError) -> AuthsvcError:
    """The error a failed Validate stands for; anything odd fails closed
    (UNAVAILABLE), an unknown refusal is TOKEN_INVALID."""
    code = error.code()
    if code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
        return Unavailable(f"Validate failed: {code}")
    return _TOKEN_ERRORS.get(reason_of(error) or "", TokenInvalid)()
