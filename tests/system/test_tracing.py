"""Traces end to end: one HTTP sign-in through the real gateway into real authsvc,
exported over OTLP/gRPC to a real receiver.

The receiver is a small gRPC server built from the opentelemetry-proto stubs
(``TraceService/Export``) that keeps every span it is sent. The browser's
request carries a W3C ``traceparent``; the gateway continues it, passes it to
authsvc, and every span of the request ends up in that one trace, the
argon2 and SQL spans children of the RPC's span. Every exported attribute is
then scanned for the secrets and identifiers the requests carried.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from ..helpers import PASSWORD, eventually_blocking
from ..servers import free_port
from .test_gateway import (
    VENV_BIN,
    Process,
    Stack,
    _create_database,
    _drop_database,
    _with_database,
    bearer,
    call,
    gateway_binary,
)

pytestmark = pytest.mark.go
__all__ = ["gateway_binary"]  # the fixture, imported to be used here

EXPORT_TIMEOUT = 120.0  # generous: a loaded machine, and batches sent every 100 ms
SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class Exported:
    """One exported span, with its service and attributes decoded."""

    service: str
    span: trace_pb2.Span
    attributes: dict[str, Any]

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps everything it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[Exported]:
        with self._lock:
            requests = list(self.requests)
        found = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append(Exported(str(resource.get("service.name")), span,
                                              _attributes(span.attributes)))
        return found

    def wait_for(self, what: str, predicate: Any) -> list[Exported]:
        """Every span so far, once ``predicate(spans)`` holds (fails after a long bound)."""
        spans: list[Exported] = []

        def found() -> bool:
            spans[:] = self.spans()
            return bool(predicate(spans))

        eventually_blocking(found, EXPORT_TIMEOUT, lambda: f"{what} among the exported spans"
                            f" (so far {sorted((s.service, s.name) for s in spans)})")
        return spans


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A running OTLP/gRPC receiver and its endpoint URL."""
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"http://127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture(scope="module")
def traced_stack(pg_admin_url: str, template_name: str, gateway_binary: Path,
                 receiver: tuple[Receiver, str]) -> Iterator[Stack]:
    """authsvc (two workers) and the gateway, both exporting to the receiver."""
    _, endpoint = receiver
    name = f"authsvc_trace_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_admin_url, name, template_name))
    url = _with_database(pg_admin_url, name)
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    settings = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
                "AUTHSVC_KEY_ENCRYPTION_KEY": kek,
                "AUTHSVC_METRICS_LISTEN": "127.0.0.1:0",
                "AUTHSVC_SHUTDOWN_GRACE": "0.5"}
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100"}
    authsvc = Process([str(VENV_BIN / "authsvc"), "serve", "--listen", f"127.0.0.1:{free_port()}",
                       "--workers", "2", "--database-url", url], env={**settings, **otel})
    gateway = None
    try:
        upstream = authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
        gateway = Process([str(gateway_binary), "--listen", "127.0.0.1:0",
                           "--upstream", upstream], env=otel)
        address = gateway.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)
        yield Stack(url, authsvc, gateway, address, settings)
    finally:
        for process in (gateway, authsvc):
            if process is not None:
                process.stop()
        asyncio.run(_drop_database(pg_admin_url, name))


def _rpc_log_line(stack: Stack, span_id: str) -> dict[str, Any]:
    """authsvc's JSON log line of the RPC whose span is ``span_id``."""
    stack.authsvc.wait_for(f'"span_id":"{span_id}"')
    for line in list(stack.authsvc.lines):
        if line.startswith("{") and f'"span_id":"{span_id}"' in line:
            return json.loads(line)  # type: ignore[no-any-return]
    raise AssertionError("unreachable: wait_for found the line")


def test_one_sign_in_is_one_trace_across_gateway_authsvc_hashing_and_sql(
        traced_stack: Stack, receiver: tuple[Receiver, str]) -> None:
    """The browser's traceparent is continued by the gateway and authsvc; the argon2,
    SQL and throttle spans are children of the SignIn span; the log line carries its ids."""
    collector, _ = receiver
    email = traced_stack.add_user()
    trace_id, browser_span = secrets.token_hex(16), secrets.token_hex(8)

    reply = call(traced_stack.address, "POST", "/v1/auth/signin",
                 {"email": email, "password": PASSWORD},
                 headers=(("traceparent", f"00-{trace_id}-{browser_span}-01"),))

    assert reply.status == 200, reply.body

    def mine(spans: list[Exported]) -> list[Exported]:
        return [s for s in spans if s.trace_id == trace_id]

    def complete(spans: list[Exported]) -> bool:
        names = {(s.service, s.name) for s in mine(spans)}
        return {("authsvc-gateway", "POST /v1/auth/signin"), ("authsvc", "authsvc.v1.Auth/SignIn"),
                ("authsvc", "argon2.hash"), ("authsvc", "argon2.queue"),
                ("authsvc", "throttle.reserve"), ("authsvc", "COMMIT")} <= names

    spans = mine(collector.wait_for("complete sign-in trace", complete))
    by_name = {s.name: s for s in spans if s.service == "authsvc"}
    by_name["POST /v1/auth/signin"] = next(s for s in spans if s.name == "POST /v1/auth/signin")
    http_span = by_name["POST /v1/auth/signin"]
    assert (http_span.service, http_span.span.kind) == ("authsvc-gateway", SERVER)
    assert http_span.parent_id == browser_span
    assert http_span.attributes["http.response.status_code"] == 200
    client = [s for s in spans if s.service == "authsvc-gateway" and s.span.kind == CLIENT]
    assert len(client) == 1 and client[0].parent_id == http_span.span_id
    rpc = by_name["authsvc.v1.Auth/SignIn"]
    assert (rpc.service, rpc.span.kind) == ("authsvc", SERVER)
    assert rpc.parent_id == client[0].span_id
    assert rpc.attributes["rpc.method"] == "SignIn"
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    assert "authsvc.reason" not in rpc.attributes
    children = [s for s in spans if s.parent_id == rpc.span_id]
    assert {"argon2.queue", "argon2.hash", "throttle.reserve"} <= {s.name for s in children}
    assert by_name["throttle.reserve"].attributes["throttle.allowed"] is True
    statements = [s for s in spans if s.attributes.get("db.system.name") == "postgresql"]
    parents = {s.span_id: s.parent_id for s in spans}

    def under_rpc(span: Exported) -> bool:
        ancestor = span.parent_id
        while ancestor and ancestor != rpc.span_id:
            ancestor = parents.get(ancestor, "")
        return ancestor == rpc.span_id

    assert statements and all(under_rpc(s) for s in statements)
    assert any(s.parent_id == by_name["throttle.reserve"].span_id for s in statements)
    # The slot and the user in one SELECT; the session's transaction: the user row
    # share-locked (SELECT), the slots' release with the pair's trust and the session
    # with its audit row (each one statement WITH a data-modifying part).
    assert {"BEGIN", "SELECT", "WITH", "COMMIT"} <= {s.name for s in statements}
    hashing = by_name["argon2.hash"]
    assert by_name["argon2.queue"].span.end_time_unix_nano <= hashing.span.start_time_unix_nano
    line = _rpc_log_line(traced_stack, rpc.span_id)
    assert (line["method"], line["code"]) == ("/authsvc.v1.Auth/SignIn", "OK")
    assert line["trace_id"] == trace_id


def test_refusals_and_validate_carry_reason_and_feed_lag(
        traced_stack: Stack, receiver: tuple[Receiver, str]) -> None:
    """A wrong password's span carries code 16 and INVALID_CREDENTIALS; Validate's
    carries the revocation feed's lag; a call without traceparent starts its own trace."""
    collector, _ = receiver
    email = traced_stack.add_user()
    wrong = call(traced_stack.address, "POST", "/v1/auth/signin",
                 {"email": email, "password": "not " + PASSWORD})
    token = call(traced_stack.address, "POST", "/v1/auth/signin",
                 {"email": email, "password": PASSWORD}).json["access_token"]
    valid = call(traced_stack.address, "POST", "/v1/auth/validate", {},
                 headers=bearer(token))

    assert (wrong.status, valid.status) == (401, 200)

    def refusal(spans: list[Exported]) -> Exported | None:
        return next((s for s in spans if s.service == "authsvc"
                     and s.attributes.get("authsvc.reason") == "INVALID_CREDENTIALS"), None)

    def found(spans: list[Exported]) -> bool:
        refused = refusal(spans)
        return refused is not None and any(
            s.trace_id == refused.trace_id and s.span.kind == SERVER
            and s.service == "authsvc-gateway" for s in spans) and any(
            s.name == "authsvc.v1.Auth/Validate" and s.service == "authsvc" for s in spans)

    spans = collector.wait_for("refused SignIn and Validate spans", found)
    refused = refusal(spans)
    assert refused is not None and refused.name == "authsvc.v1.Auth/SignIn"
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    validate = next(s for s in spans
                    if s.name == "authsvc.v1.Auth/Validate" and s.service == "authsvc")
    assert validate.attributes["rpc.grpc.status_code"] == 0
    lag = validate.attributes["authsvc.revocation_feed.lag_s"]
    assert isinstance(lag, float) and lag >= 0
    assert validate.attributes["authsvc.revocation_feed.trusted"] is True
    gateway_root = next(s for s in spans if s.trace_id == refused.trace_id
                        and s.span.kind == SERVER and s.service == "authsvc-gateway")
    assert gateway_root.parent_id == ""  # no traceparent came in: the gateway began the trace
    assert _rpc_log_line(traced_stack, validate.span_id)["trace_id"] == validate.trace_id


def test_no_exported_span_carries_a_secret_identifier_or_address(
        traced_stack: Stack, receiver: tuple[Receiver, str]) -> None:
    """Tokens, passwords, emails, user and session ids and addresses appear in no
    attribute, event or span name of any exported span (gateway's and authsvc's)."""
    collector, _ = receiver
    email = traced_stack.add_user()
    trace_id = secrets.token_hex(16)
    signed_in = call(traced_stack.address, "POST", "/v1/auth/signin",
                     {"email": email, "password": PASSWORD},
                     headers=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),
                              ("X-Forwarded-For", "203.0.113.9"))).json
    refreshed = call(traced_stack.address, "POST", "/v1/auth/refresh",
                     {"refresh_token": signed_in["refresh_token"]},
                     headers=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),))
    assert refreshed.status == 200, refreshed.body
    collector.wait_for("the refresh", lambda spans: any(
        s.trace_id == trace_id and s.name == "authsvc.v1.Auth/Refresh"
        and s.service == "authsvc" for s in spans))
    forbidden = {PASSWORD, email, email.split("@")[0], "127.0.0.1", "203.0.113.9",
                 *(signed_in[k] for k in ("access_token", "refresh_token", "session_id",
                                          "user_id", "device_token") if signed_in.get(k)),
                 *(refreshed.json[k] for k in ("access_token", "refresh_token"))}

    exported = [json.dumps({"name": s.name, "attributes": s.attributes,
                            "events": [{"name": e.name, "attributes": _attributes(e.attributes)}
                                       for e in s.span.events]}, default=str)
                for s in collector.spans()]

    assert len(exported) > 20
    leaks = [(secret, text) for text in exported for secret in forbidden if secret in text]
    assert leaks == []
