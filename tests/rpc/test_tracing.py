"""Spans in-process: the RPC span and its children, and the guard's verification span.

The end-to-end trace (gateway, OTLP export, SQL spans) is tests/system/test_tracing.py;
here the SDK records into memory, so each test reads exactly the spans of its calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from authsvc import tracing
from authsvc.runtime.logs import JsonFormatter
from authsvc.v1 import auth_pb2
from authsvc.verifiers import LocalVerifier

from ..helpers import PASSWORD, fails, sign_in


@pytest.fixture
def recorded() -> Iterator[InMemorySpanExporter]:
    """authsvc's spans recorded in memory while the test runs."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider.get_tracer("authsvc"))
    try:
        yield exporter
    finally:
        tracing.enable(None)
        provider.shutdown()


async def test_a_sign_in_is_a_server_span_with_hash_and_throttle_children(
        recorded, stub, user, caplog):
    """SignIn's span continues the caller's traceparent; argon2.queue, argon2.hash and
    throttle.reserve are its children; its log line carries its ids."""
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    caplog.set_level(logging.INFO, logger="authsvc.rpc")

    await stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com", password=PASSWORD),
                      metadata=(("traceparent", f"00-{trace_id}-{parent}-01"),))

    spans = {s.name: s for s in recorded.get_finished_spans()}
    rpc = spans["authsvc.v1.Auth/SignIn"]
    assert f"{rpc.context.trace_id:032x}" == trace_id
    assert f"{rpc.parent.span_id:016x}" == parent
    assert rpc.kind == trace.SpanKind.SERVER
    assert dict(rpc.attributes) == {"rpc.system": "grpc", "rpc.service": "authsvc.v1.Auth",
                                    "rpc.method": "SignIn", "rpc.grpc.status_code": 0}
    for child in ("argon2.queue", "argon2.hash", "throttle.reserve"):
        assert spans[child].parent.span_id == rpc.context.span_id, child
    assert spans["throttle.reserve"].attributes["throttle.allowed"] is True
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records
             if r.name == "authsvc.rpc"]
    assert [(line["trace_id"], line["span_id"]) for line in lines] == [
        (trace_id, f"{rpc.context.span_id:016x}")]


async def test_a_refusal_records_its_code_and_reason(recorded, stub, user):
    """A wrong password's span carries UNAUTHENTICATED (16) and INVALID_CREDENTIALS, and is
    not marked as a server error."""
    failure = await fails(stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                             password="wrong " + PASSWORD)))

    assert failure.reason == "INVALID_CREDENTIALS"
    rpc = next(s for s in recorded.get_finished_spans() if s.name == "authsvc.v1.Auth/SignIn")
    assert rpc.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert rpc.attributes["authsvc.reason"] == "INVALID_CREDENTIALS"
    assert rpc.status.is_unset


async def test_validate_carries_the_revocation_feeds_lag(recorded, stub, user):
    """Validate's span says how long ago the revocation feed confirmed the set, and that
    it is trusted."""
    signed_in = await sign_in(stub)

    await stub.Validate(auth_pb2.ValidateRequest(access_token=signed_in.access_token))

    rpc = next(s for s in recorded.get_finished_spans()
               if s.name == "authsvc.v1.Auth/Validate")
    assert rpc.attributes["authsvc.revocation_feed.lag_s"] >= 0
    assert rpc.attributes["authsvc.revocation_feed.trusted"] is True
    assert signed_in.access_token not in str(dict(rpc.attributes))


async def test_the_guard_verifies_in_a_span_of_the_hosts_tracer_provider(
        server, stub, user, clock, watcher):
    """With OpenTelemetry configured by the host service, LocalVerifier's verification is
    an authsvc.guard.verify span carrying no token."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the host's provider, set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    signed_in = await sign_in(stub)

    async with LocalVerifier(f"127.0.0.1:{server}", clock=clock,
                             access_token=lambda: watcher) as verifier:
        claims = await verifier.verify_async(signed_in.access_token)

    assert claims.session_id == signed_in.session_id
    spans = [s for s in exporter.get_finished_spans() if s.name == "authsvc.guard.verify"]
    assert len(spans) == 1
    assert signed_in.access_token not in str(dict(spans[0].attributes or {}))


async def test_health_checks_make_no_spans(recorded, channel):
    """Probes call Health/Check every few seconds; they would be most of the traces."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())

    assert recorded.get_finished_spans() == ()
