"""The README's path, as a new user takes it: serve on the embedded default,
add a user, then SignIn → Validate → Refresh → Revoke → Validate."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, parse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="authsvc-e2e-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never appeared:\n{''.join(lines)}")


def test_serve_on_the_embedded_default_then_the_whole_token_lifecycle(data_dir):
    """With no database URL, serve starts PostgreSQL itself; revoked tokens are refused."""
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env["AUTHSVC_ARGON2_PROFILE"] = "test-only-cheapest"
    env["AUTHSVC_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "authsvc", "serve", "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{port}", "--workers", "2"],
        stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_line(server, f"listening on 127.0.0.1:{port}")
        added = subprocess.run(
            [sys.executable, "-m", "authsvc", "users", "add", "--email", "new@example.com",
             "--password-stdin", "--data-dir", str(data_dir)],
            input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60,
            check=True)
        user_id = added.stdout.strip()

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = auth_pb2_grpc.AuthStub(channel)
            signed_in = stub.SignIn(auth_pb2.SignInRequest(email="new@example.com",
                                                           password=PASSWORD))
            assert stub.Validate(auth_pb2.ValidateRequest(
                access_token=signed_in.access_token)).user_id == user_id
            refreshed = stub.Refresh(auth_pb2.RefreshRequest(
                refresh_token=signed_in.refresh_token))
            stub.Revoke(auth_pb2.RevokeRequest(token=refreshed.refresh_token))
            # Another worker may answer: the NOTIFY reaches it within milliseconds.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    stub.Validate(auth_pb2.ValidateRequest(access_token=refreshed.access_token))
                except grpc.RpcError:
                    break
            failures = []
            for _ in range(10):
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Validate(auth_pb2.ValidateRequest(access_token=refreshed.access_token))
                failures.append(parse(caught.value))
        assert {(f.code, f.reason) for f in failures} == {
            (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")}
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                    timeout=10) as page:
            metrics = page.read().decode()
        assert 'authsvc_signin_total{outcome="success"} 1.0' in metrics
        validates = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith('authsvc_rpc_total{code="UNAUTHENTICATED",method='
                                        '"/authsvc.v1.Auth/Validate"}')]
        assert validates == [11.0]  # the first refusal, then ten more, summed over workers
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "embedded database left running"
