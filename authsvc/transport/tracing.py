"""The server span of one RPC (only called while tracing is on; see
``authsvc.runtime.tracing``): it continues the caller's W3C ``traceparent``
from the call's metadata and is current while a unary call runs, so the
hashing, SQL and throttle spans below it are its children.

Attributes: ``rpc.system``, ``rpc.service``, ``rpc.method``,
``rpc.grpc.status_code`` and, for a refusal, ``authsvc.reason`` (the ErrorInfo
reason). Never the request, the peer's address or any metadata value.
"""

from __future__ import annotations

from typing import Any

import grpc

from .. import tracing

# Server-side errors mark the span as failed; a client's mistake does not
# (OpenTelemetry's semantic conventions for gRPC servers).
_SERVER_FAULTS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL",
                            "UNAVAILABLE", "DATA_LOSS"})


class RpcSpan:
    """The span of one call; ``end`` it exactly once."""

    def __init__(self, method: str, metadata: Any, *, current: bool) -> None:
        from opentelemetry import context, propagate, trace

        carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
        parent = propagate.extract(carrier)
        service, _, name = method.lstrip("/").partition("/")
        self.span = tracing.tracer().start_span(
            f"{service}/{name}", context=parent, kind=trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
        self._token = context.attach(trace.set_span_in_context(self.span, parent)) \
            if current else None

    def ids(self) -> dict[str, str]:
        return tracing.ids(self.span)

    def answered(self, code: str, reason: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        number = grpc.StatusCode[code].value[0] if code in grpc.StatusCode.__members__ else 2
        self.span.set_attribute("rpc.grpc.status_code", number)
        if reason is not None:
            self.span.set_attribute("authsvc.reason", reason)
        if code in _SERVER_FAULTS:
            self.span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        from opentelemetry import context

        if self._token is not None:
            context.detach(self._token)
            self._token = None
        self.span.end()
