"""Spans when tracing is on; nothing at all, not even an import, when it is off.

Every layer may import this module: it holds no OpenTelemetry import of its
own until tracing is turned on. The server turns it on with
``authsvc.runtime.tracing.setup`` (only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is
set), which hands ``enable`` a tracer; until then ``span``, ``record`` and
``annotate`` do nothing and ``ids`` is empty.

The guard (``guard_span``), which runs inside other services, uses whatever
tracer provider its host configured through the OpenTelemetry API, when the
API is importable; the guard does not depend on it.

Attributes never carry a token, password, identifier, session or user id,
or an address: only method names, status codes and reasons, counts,
durations and booleans.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

Attributes = Mapping[str, str | bool | int | float]

_tracer: Any = None  # an opentelemetry.trace.Tracer once enable() ran
_guard_tracer: Any = None  # None: not looked up yet; False: OpenTelemetry not importable


def enable(tracer: Any) -> None:
    """Record spans with ``tracer`` from now on (``None`` turns tracing off)."""
    global _tracer
    _tracer = tracer


def enabled() -> bool:
    return _tracer is not None


def tracer() -> Any:
    return _tracer


@contextlib.contextmanager
def span(name: str, attributes: Attributes | None = None) -> Iterator[Any]:
    """A child span of the current one, current inside the block (``None`` when off)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=attributes,
                                       record_exception=False,
                                       set_status_on_exception=False) as current:
        yield current


def record(name: str, start_ns: int, end_ns: int, attributes: Attributes | None = None,
           ) -> None:
    """A finished child span of the current one, from ``start_ns`` to ``end_ns``
    (``time.time_ns()`` values): for work timed elsewhere (a thread, a driver).
    Nothing outside a recorded span: background work (health pings, housekeeping)
    makes no root spans of its own."""
    if _tracer is None:
        return
    from opentelemetry import trace

    if not trace.get_current_span().is_recording():
        return
    done = _tracer.start_span(name, attributes=attributes, start_time=start_ns)
    done.end(end_time=end_ns)


def record_elapsed(name: str, elapsed: float, attributes: Attributes | None = None) -> None:
    """A finished child span of the current one that lasted ``elapsed`` seconds and
    ended just now."""
    if _tracer is None:
        return
    end = time.time_ns()
    record(name, end - int(elapsed * 1e9), end, attributes)


def annotate(attributes: Attributes) -> None:
    """Set attributes on the current span (nothing when off)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(attributes)


def ids(current: Any = None) -> dict[str, str]:
    """``trace_id`` and ``span_id`` (hex) of ``current`` or of the current span, for
    a log line; empty when tracing is off or no span is being recorded."""
    if _tracer is None:
        return {}
    if current is None:
        from opentelemetry import trace

        current = trace.get_current_span()
    context = current.get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


@contextlib.contextmanager
def guard_span(name: str) -> Iterator[Any]:
    """A span of the guard's, through the host's OpenTelemetry API tracer provider
    (a no-op one unless the host configured tracing); nothing without the API."""
    global _guard_tracer
    if _guard_tracer is None:
        try:
            from opentelemetry import trace
        except ImportError:
            _guard_tracer = False
        else:
            _guard_tracer = trace.get_tracer("authsvc.guard")
    if _guard_tracer is False:
        yield None
        return
    with _guard_tracer.start_as_current_span(name, record_exception=False,
                                       set_status_on_exception=False) as current:
        yield current
