"""The README's path, as a new user takes it: serve on the embedded default,
add a user, then SignIn → Validate → Refresh → Revoke → Validate."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import grpc
import pytest

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, eventually_blocking, parse
from ..servers import AuthsvcProcess, free_port, server_env


@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="authsvc-e2e-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_on_the_embedded_default_then_the_whole_token_lifecycle(data_dir):
    """With no database URL, serve starts PostgreSQL itself; revoked tokens are refused."""
    port, metrics_port = free_port(), free_port()
    env = server_env(AUTHSVC_METRICS_LISTEN=f"127.0.0.1:{metrics_port}")
    server = AuthsvcProcess(port, env, ["--data-dir", str(data_dir), "--workers", "2"])
    try:
        server.start().wait_ready()
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

            def refused() -> bool:
                try:
                    stub.Validate(auth_pb2.ValidateRequest(access_token=refreshed.access_token))
                except grpc.RpcError:
                    return True
                return False

            # Another worker may answer: the NOTIFY reaches it within milliseconds.
            eventually_blocking(refused, 1.0, "the revoked token to be refused")
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
        server.signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    assert code == 0, server.log
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "embedded database left running"
