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
        "import authsvc.guard, authsvc.domain.passwords, authsvc.domain.throttle\n"
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
