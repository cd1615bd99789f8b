"""The one place that turns domain errors into gRPC status.

Each client error becomes its code with a ``google.rpc.ErrorInfo`` (domain
"authsvc", the error's reason) and, where it helps, BadRequest or RetryInfo
details. Every UNAUTHENTICATED answer carries an RFC 6750 ``www-authenticate``
trailer. Messages are fixed text from ``authsvc.errors``, never user input.
Anything unexpected is logged and answered INTERNAL with a generic message,
because grpc.aio would otherwise send the exception's text to the client.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import (
    AlreadyExists,
    ClientError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from .observability import error_reason

log = logging.getLogger(__name__)

DOMAIN = "authsvc"
REALM = "authsvc"
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Trailers = tuple[tuple[str, str | bytes], ...]


def challenge(error: str | None = None, description: str | None = None,
              scope: str | None = None) -> str:
    """An RFC 6750 ``WWW-Authenticate`` value. Callers pass fixed text only."""
    parts = [f'realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{error}"')
        if description is not None:
            parts.append(f'error_description="{description}"')
    if scope is not None:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


def describe(exc: BaseException) -> tuple[grpc.StatusCode, str, Trailers]:
    """The status code, message and trailing metadata for an exception."""
    if isinstance(exc, ClientError):
        code, extra, trailers = _client_error(exc)
        details = [error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN), *extra]
        return code, exc.message, _with_details(code, exc.message, details) + trailers
    if isinstance(exc, Unavailable):
        message = "The service is temporarily unavailable; retry shortly."
        return grpc.StatusCode.UNAVAILABLE, message, ()
    return grpc.StatusCode.INTERNAL, "Internal error.", ()


def _client_error(exc: ClientError) -> tuple[grpc.StatusCode, list[Any], Trailers]:
    if isinstance(exc, Unauthenticated):
        value = challenge(exc.error, exc.message.rstrip(".") if exc.error else None)
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


async def abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    code, message, trailers = describe(exc)
    if isinstance(exc, ClientError):
        error_reason.set(exc.reason)
    if code == grpc.StatusCode.INTERNAL:
        log.error("unexpected error in %s", type(exc).__name__, exc_info=exc)
    await context.abort(code, message, trailing_metadata=trailers)


def unary(method: Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]],
          ) -> Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
    """Wrap a unary servicer method so every exception leaves as a proper status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort(context, exc)
            raise AssertionError("unreachable: abort raises") from exc

    return wrapper


def streaming(method: Callable[[Any, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]],
              ) -> Callable[[Any, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]]:
    """The same for server-streaming methods."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req,
                      context: grpc.aio.ServicerContext) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort(context, exc)

    return wrapper
