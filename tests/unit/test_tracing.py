"""Tracing is off and free unless an OTLP endpoint is configured."""

from __future__ import annotations

import subprocess
import sys

from authsvc import tracing
from authsvc.runtime.tracing import wanted


def test_an_otlp_endpoint_turns_tracing_on_and_nothing_else_does():
    """Only the standard OTLP endpoint variables (traces-specific or general) turn it on."""
    assert not wanted({})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_SERVICE_NAME": "authsvc"})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})


def test_off_the_server_imports_nothing_of_opentelemetry():
    """A worker's modules load without importing OpenTelemetry, and every helper is a no-op."""
    code = (
        "import sys\n"
        "import authsvc.runtime.worker, authsvc.runtime.app, authsvc.transport.calls\n"
        "import authsvc.guard, authsvc.domain.accounts.passwords\n"
        "import authsvc.domain.throttling.throttle\n"
        "from authsvc import tracing\n"
        "with tracing.span('x') as s: assert s is None\n"
        "tracing.record('x', 0, 1); tracing.annotate({'a': 1}); assert tracing.ids() == {}\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)

    assert result.stdout.strip() == "[]"


def test_helpers_do_nothing_while_tracing_is_off():
    """Without enable(), span yields None and ids is empty."""
    assert not tracing.enabled()
    with tracing.span("anything", {"k": "v"}) as span:
        assert span is None
    assert tracing.ids() == {}


def test_work_timed_elsewhere_is_recorded_only_inside_a_span():
    """record() adds a child to the current span, and nothing at all outside one, so
    background statements (health pings, housekeeping) make no root spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider.get_tracer("test"))
    try:
        tracing.record("outside", 1_000, 2_000)
        with tracing.span("call") as call:
            tracing.record("inside", 1_000, 2_000, {"n": 1})
            ids = tracing.ids()
    finally:
        tracing.enable(None)

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"call", "inside"}
    assert spans["inside"].parent.span_id == call.get_span_context().span_id
    assert (spans["inside"].start_time, spans["inside"].end_time) == (1_000, 2_000)
    assert ids == {"trace_id": f"{call.get_span_context().trace_id:032x}",
                   "span_id": f"{call.get_span_context().span_id:016x}"}
