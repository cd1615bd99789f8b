"""One JSON log line and a set of Prometheus metrics per RPC.

The outermost server interceptor: it sees every call, including those the
auth interceptor refuses. Each call gets a request id (the caller's
``x-request-id`` when it is a sane token, else a new one), and the log line
carries method, code, ErrorInfo reason, duration, user and session when the
response names them, request id and client address — never a token,
password or hash.

Metrics (prometheus-client; served on ``AUTHSVC_METRICS_LISTEN`` by the
runner, aggregated across worker processes):

- ``authsvc_rpc_total{method,code}`` and ``authsvc_rpc_duration_seconds{method}``
- ``authsvc_signin_total{outcome}`` (success or the ErrorInfo reason)
- ``authsvc_refresh_reuse_total``, ``authsvc_throttled_total{method}``
- gauges, refreshed every few seconds: ``authsvc_revoked_sessions``,
  ``authsvc_db_pool_connections{state}``, ``authsvc_argon2_queue``
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

from .metadata import peer_address

log = logging.getLogger("authsvc.rpc")

RPCS = Counter("authsvc_rpc", "RPCs answered", ["method", "code"])
LATENCY = Histogram("authsvc_rpc_duration_seconds", "RPC latency", ["method"],
                    buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
SIGN_INS = Counter("authsvc_signin", "SignIn outcomes", ["outcome"])
REUSE = Counter("authsvc_refresh_reuse", "Refresh-token reuse detections")
THROTTLED = Counter("authsvc_throttled", "Calls refused by throttling", ["method"])
REVOKED = Gauge("authsvc_revoked_sessions", "Sessions in the revocation set",
                multiprocess_mode="livemax")
POOL = Gauge("authsvc_db_pool_connections", "Database pool connections", ["state"],
             multiprocess_mode="livesum")
ARGON2_QUEUE = Gauge("authsvc_argon2_queue", "Password hashes running or waiting",
                     multiprocess_mode="livesum")

# Set by transport.status when it answers with an ErrorInfo reason.
error_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "authsvc_error_reason", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
            details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        request_id = _request_id(details.invocation_metadata)
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started, response = time.perf_counter(), None
                error_reason.set(None)
                try:
                    response = await inner(request, context)
                    return response
                finally:
                    _observe(method, context, started, request_id, response)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext,
                             ) -> AsyncIterator[Any]:
                started = time.perf_counter()
                error_reason.set(None)
                try:
                    async for item in inner_stream(request, context):
                        yield item
                finally:
                    _observe(method, context, started, request_id, None)

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream is not None:  # writes with context.write (grpc's health Watch)
            inner_writer = handler.unary_stream

            async def writer(request: Any, context: grpc.aio.ServicerContext) -> None:
                started = time.perf_counter()
                error_reason.set(None)
                try:
                    await inner_writer(request, context)
                finally:
                    _observe(method, context, started, request_id, None)

            return grpc.unary_stream_rpc_method_handler(
                writer, handler.request_deserializer, handler.response_serializer)
        return handler


def update_gauges(revoked: int, pool_size: int, pool_idle: int, argon2_queue: int) -> None:
    REVOKED.set(revoked)
    POOL.labels("busy").set(pool_size - pool_idle)
    POOL.labels("idle").set(pool_idle)
    ARGON2_QUEUE.set(argon2_queue)


def _observe(method: str, context: grpc.aio.ServicerContext, started: float,
             request_id: str, response: Any) -> None:
    elapsed = time.perf_counter() - started
    code = context.code()
    if code is None:  # neither aborted nor set: OK, or cancelled by the client
        code = grpc.StatusCode.OK if response is not None or context.done() is False \
            else grpc.StatusCode.CANCELLED
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    reason = error_reason.get()
    short = method.rsplit("/", 1)[-1]
    RPCS.labels(method, name).inc()
    LATENCY.labels(method).observe(elapsed)
    if short == "SignIn" and method.startswith("/authsvc.v1.Auth/"):
        SIGN_INS.labels("success" if name == "OK" else (reason or name)).inc()
    if reason == "REFRESH_TOKEN_REUSED":
        REUSE.inc()
    if reason == "RATE_LIMITED":
        THROTTLED.labels(method).inc()
    fields: dict[str, Any] = {
        "method": method, "code": name, "duration_ms": round(elapsed * 1000, 3),
        "request_id": request_id, "client_addr": peer_address(context.peer()),
    }
    if reason is not None:
        fields["reason"] = reason
    for attribute in ("user_id", "session_id"):
        value = getattr(response, attribute, None)
        if value:
            fields[attribute] = value
    log.info("rpc", extra={"fields": fields})


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex
