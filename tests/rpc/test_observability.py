"""Logs and metrics: one JSON line per RPC, Prometheus counters, never a secret."""

from __future__ import annotations

import json
import logging

import grpc
from prometheus_client import REGISTRY

from authsvc.runtime.logs import JsonFormatter
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, fails, sign_in, travel


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_rpc_logs_one_json_line_without_secrets(stub, user, caplog):
    """A line per RPC with method, code, reason, ids and duration; no token or password."""
    caplog.set_level(logging.INFO, logger="authsvc.rpc")
    signed_in = await sign_in(stub)
    await fails(stub.Validate(auth_pb2.ValidateRequest(access_token="x.y.z"),
                              metadata=(("x-request-id", "req-42"),)))

    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records
             if r.name == "authsvc.rpc"]

    assert [(line["method"], line["code"]) for line in lines] == [
        ("/authsvc.v1.Auth/SignIn", "OK"), ("/authsvc.v1.Auth/Validate", "UNAUTHENTICATED")]
    assert lines[0]["user_id"] == user and lines[0]["session_id"] == signed_in.session_id
    assert lines[1]["reason"] == "TOKEN_INVALID" and lines[1]["request_id"] == "req-42"
    assert all(line["client_addr"] == "127.0.0.1" and line["duration_ms"] >= 0
               for line in lines)
    text = "\n".join(caplog.text.splitlines()) + json.dumps(lines)
    for secret in (PASSWORD, signed_in.access_token, signed_in.refresh_token):
        assert secret not in text


async def test_metrics_count_rpcs_sign_in_outcomes_and_reuse(stub, user, clock, database_url):
    """Counters move by method and code, sign-in outcome and reuse detection."""
    before = (sample("authsvc_rpc_total", method="/authsvc.v1.Auth/SignIn", code="OK"),
              sample("authsvc_signin_total", outcome="INVALID_CREDENTIALS"),
              sample("authsvc_refresh_reuse_total"))
    signed_in = await sign_in(stub)
    await fails(sign_in(stub, password="wrong password"))
    await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=signed_in.refresh_token))
    await travel(database_url, 60, clock)
    failure = await fails(stub.Refresh(auth_pb2.RefreshRequest(
        refresh_token=signed_in.refresh_token)))

    after = (sample("authsvc_rpc_total", method="/authsvc.v1.Auth/SignIn", code="OK"),
             sample("authsvc_signin_total", outcome="INVALID_CREDENTIALS"),
             sample("authsvc_refresh_reuse_total"))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
