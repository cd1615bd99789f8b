"""One JSON log line and a set of Prometheus metrics per RPC.

``transport.calls`` observes every call, including those the auth
interceptor refuses, before its answer is sent. Each call gets a request id (the caller's
``x-request-id`` when it is a sane token, else a new one), and the log line
carries method, code, ErrorInfo reason, duration, user and session when the
response names them, request id and client address, and the trace and span ids when the call is
traced — never a token,
password or hash.

Metrics (prometheus-client; served on ``AUTHSVC_METRICS_LISTEN`` by the
runner, aggregated across worker processes):

- ``authsvc_rpc_total{method,code}`` and ``authsvc_rpc_duration_seconds{method}``
- ``authsvc_signin_total{outcome}`` (success or the ErrorInfo reason)
- ``authsvc_refresh_reuse_total``, ``authsvc_throttled_total{method}``
- ``authsvc_pruned_rows_total{table}``: rows housekeeping deleted
- gauges, refreshed every few seconds: ``authsvc_revoked_sessions``,
  ``authsvc_db_pool_connections{state}``, ``authsvc_argon2_queue``,
  ``authsvc_clock_offset_seconds`` (this worker's clock minus the database's)
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
import uuid
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
FOREIGN_HASHES = Gauge("authsvc_users_foreign_hash",
                       "Imported users whose password is still their old system's hash "
                       "(until their first sign-in upgrades it)", multiprocess_mode="livemax")
PRUNED = Counter("authsvc_pruned_rows", "Rows deleted by housekeeping", ["table"])
CLOCK_OFFSET = Gauge("authsvc_clock_offset_seconds",
                     "This worker's clock minus the database's, as last measured",
                     multiprocess_mode="livemax")
WORKER_RSS = Gauge("authsvc_workers_resident_memory_bytes",
                   "Resident memory of the worker processes, summed",
                   multiprocess_mode="livesum")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def observe_pruning(pruned: dict[str, int]) -> None:
    for table, rows in pruned.items():
        PRUNED.labels(table).inc(rows)


def observe_foreign_hashes(users: int) -> None:
    FOREIGN_HASHES.set(users)


def update_gauges(revoked: int, pool_size: int, pool_idle: int, argon2_queue: int,
                  clock_offset: float) -> None:
    REVOKED.set(revoked)
    CLOCK_OFFSET.set(clock_offset)
    POOL.labels("busy").set(pool_size - pool_idle)
    POOL.labels("idle").set(pool_idle)
    ARGON2_QUEUE.set(argon2_queue)
    WORKER_RSS.set(_resident_bytes())


def _resident_bytes() -> int:
    """This process's resident set (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def observe(method: str, context: grpc.aio.ServicerContext, started: float,
            request_id: str, response: Any, code: grpc.StatusCode | None = None,
            reason: str | None = None, trace: dict[str, str] | None = None) -> str:
    """Count the call and write its log line; ``code`` and ``reason`` when it is
    being refused, else read from the context (a call another interceptor
    aborted, or one that ended without an answer); ``trace``: the trace and span
    ids of its span, when traced. Returns the status code's name."""
    elapsed = time.perf_counter() - started
    if code is None:
        code = context.code()
    if code is None:  # neither aborted nor set: OK, or cancelled by the client
        code = grpc.StatusCode.OK if response is not None or context.done() is False \
            else grpc.StatusCode.CANCELLED
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    short = method.rsplit("/", 1)[-1]
    _rpcs(method, name).inc()
    _latency(method).observe(elapsed)
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
    if trace:
        fields.update(trace)
    for attribute in ("user_id", "session_id"):
        value = getattr(response, attribute, None)
        if value:
            fields[attribute] = value
    log.info("rpc", extra={"fields": fields})
    return name


@functools.cache
def _rpcs(method: str, code: str) -> Any:
    """``RPCS.labels(method, code)``, looked up once per pair (a few dozen methods and
    codes; unknown methods never get this far)."""
    return RPCS.labels(method, code)


@functools.cache
def _latency(method: str) -> Any:
    return LATENCY.labels(method)


def request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex
