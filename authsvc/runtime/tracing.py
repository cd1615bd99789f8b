"""OpenTelemetry tracing of one worker, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

The standard OpenTelemetry variables configure it, nothing authsvc-specific:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
turns it on and says where the OTLP/gRPC collector listens;
``OTEL_EXPORTER_OTLP_INSECURE``, ``…_HEADERS``, ``…_CERTIFICATE`` and
``…_TIMEOUT`` are read by the exporter; ``OTEL_SERVICE_NAME`` (default
``authsvc``) and ``OTEL_RESOURCE_ATTRIBUTES`` name the service;
``OTEL_TRACES_SAMPLER`` / ``…_ARG`` choose the sampler (default: parent-based,
always on); ``OTEL_BSP_*`` tune the batch processor. With the variable unset
nothing of OpenTelemetry is imported and every span helper is a no-op.

What is traced (``authsvc.tracing`` holds the helpers the layers call):

- a server span per RPC (``transport.calls``), continuing the caller's W3C
  ``traceparent``, with ``rpc.method``, ``rpc.grpc.status_code`` and
  ``authsvc.reason`` (the ErrorInfo reason);
- ``argon2.queue`` and ``argon2.hash`` (``domain.accounts.passwords``): the wait for a
  hashing thread and the hashing itself, apart;
- a span per SQL statement, from asyncpg's query loggers attached to every
  pooled connection (``query_spans``, the pool's ``init`` hook): the
  statement's text (parameters are never in it, only ``$1``…), its operation;
- ``throttle.reserve`` and ``throttle.check`` with the decision;
- on Validate, ``authsvc.revocation_feed.lag_s``: seconds since the
  revocation feed last confirmed the set.

Each worker process has its own provider (workers are spawned, and a batch
processor's thread does not survive a fork) and flushes it when it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import asyncpg

from .. import tracing

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
FLUSH_TIMEOUT_MS = 5000


def wanted(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Is an OTLP endpoint configured (tracing on)?"""
    return any(environ.get(name) for name in ENDPOINT_VARIABLES)


@contextlib.contextmanager
def tracing_enabled() -> Iterator[bool]:
    """Trace this worker while the block runs, if an endpoint is configured; the
    spans still queued are exported (within a bound) when it ends."""
    if not wanted():
        yield False
        return
    provider = _provider()
    tracing.enable(provider.get_tracer("authsvc"))
    try:
        yield True
    finally:
        tracing.enable(None)
        provider.force_flush(FLUSH_TIMEOUT_MS)
        provider.shutdown()


def _provider() -> Any:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "authsvc")})
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # also what authsvc.guard's spans would use
    return provider


async def query_spans(conn: asyncpg.Connection) -> None:
    """The pool's ``init`` hook: a span per statement this connection runs. asyncpg
    calls the logger with ``call_soon`` in the statement's own context, so the span
    is a child of the span that ran the statement (the RPC's)."""
    conn.add_query_logger(_statement_span)


def _statement_span(record: Any) -> None:
    query = record.query if isinstance(record.query, str) else ""
    operation = query.split(None, 1)[0].upper() if query.strip() else "SQL"
    attributes: dict[str, str | bool] = {
        "db.system.name": "postgresql",
        "db.operation.name": operation,
        "db.query.text": query,  # parameters travel apart ($1, $2…), never in the text
    }
    if record.exception is not None:
        attributes["error.type"] = type(record.exception).__name__
    tracing.record_elapsed(operation, record.elapsed, attributes)
