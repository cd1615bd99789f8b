"""Graceful shutdown: SIGTERM drains in-flight calls, refuses new ones, exits 0,
and stops the embedded PostgreSQL it started."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, eventually, fails
from ..servers import (
    AuthsvcProcess,
    free_port,
    new_key,
    postmaster_pid,
    server_env,
)

GRACE = 10.0  # AUTHSVC_SHUTDOWN_GRACE's default, set explicitly
IN_FLIGHT = 20


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """One embedded data directory for the module, so initdb runs once."""
    path = Path(tempfile.mkdtemp(prefix="authsvc-stop-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def add_user(data_dir: Path, email: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "authsvc", "users", "add", "--email", email,
         "--password-stdin", "--data-dir", str(data_dir)],
        input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60,
        check=True)


async def health(address: str, timeout: float = 2.0) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=timeout)
        return int(reply.status)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_in_flight_sign_ins_finish_then_exits_0(data_dir, workers):
    """After SIGTERM every in-flight SignIn succeeds, new calls are refused with
    UNAVAILABLE, and the process exits 0 within the grace period, its embedded
    PostgreSQL stopped."""
    # The production argon2 profile: each SignIn holds a hashing thread ~50 ms,
    # so twenty of them queue for about a second. Each attempt holds a throttle
    # slot until it succeeds, so the pair and identifier budgets are raised above
    # the twenty in flight: this test is about draining, not throttling.
    env = server_env(AUTHSVC_ARGON2_PROFILE="owasp", AUTHSVC_SHUTDOWN_GRACE=str(GRACE),
                     AUTHSVC_THROTTLE_PAIR_FREE="100", AUTHSVC_THROTTLE_IDENTIFIER_FREE="100")
    server = AuthsvcProcess(free_port(), env, ["--data-dir", str(data_dir),
                                              "--workers", str(workers)])
    email = f"drain{workers}@example.com"
    try:
        server.start().wait_ready()
        add_user(data_dir, email, env)
        assert await health(server.address) == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = auth_pb2_grpc.AuthStub(channel)
            calls = [asyncio.ensure_future(stub.SignIn(
                auth_pb2.SignInRequest(email=email, password=PASSWORD), timeout=30))
                for _ in range(IN_FLIGHT)]
            # Once one has answered, the server has all of them.
            await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)

            server.signal(signal.SIGTERM)
            signalled = time.monotonic()
            still_running = sum(not c.done() for c in calls)
            # Every worker is draining (the call below may reach any of them).
            await eventually(lambda: server.log.count('"msg":"shutting down"') >= workers,
                             5, "every worker to start draining")
            late = await fails(stub.Validate(auth_pb2.ValidateRequest(access_token="x"),
                                             timeout=5))
            results = await asyncio.gather(*calls, return_exceptions=True)

        exit_code = await asyncio.to_thread(server.wait, GRACE + 5)
        took = time.monotonic() - signalled
    finally:
        server.stop()

    assert still_running >= IN_FLIGHT // 4, "SIGTERM came too late to test draining"
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert all(r.session_id for r in results)
    assert late.code == grpc.StatusCode.UNAVAILABLE
    assert exit_code == 0, server.log
    # It exited on its own, within the grace and the few seconds stopping the embedded
    # database takes (server.wait's bound); how long exactly depends on the machine.
    assert took < GRACE + 5
    assert not postmaster_pid(data_dir).exists(), "embedded PostgreSQL left running"
    assert '"stopped"' in server.log


async def test_after_sigterm_new_connections_are_refused(database_url):
    """Once draining starts, a new connection's health check fails with UNAVAILABLE."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_SHUTDOWN_GRACE=str(GRACE))
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    try:
        server.start().wait_ready()
        assert await health(server.address) == health_pb2.HealthCheckResponse.SERVING

        server.signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(server.wait, GRACE)
        with pytest.raises(grpc.RpcError) as refused:
            await health(server.address)
    finally:
        server.stop()

    assert exit_code == 0, server.log
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_health_watcher_sees_not_serving_and_does_not_hold_up_shutdown(database_url):
    """A client watching health hears NOT_SERVING on SIGTERM, and its open Watch
    stream does not keep the process alive for the whole grace period."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_SHUTDOWN_GRACE=str(GRACE))
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    seen: list[int] = []
    try:
        server.start().wait_ready()
        async with grpc.aio.insecure_channel(server.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(), timeout=GRACE + 5)
            stream = watch.__aiter__()
            seen.append(int((await stream.__anext__()).status))

            server.signal(signal.SIGTERM)
            signalled = time.monotonic()
            with pytest.raises((StopAsyncIteration, grpc.RpcError)):
                while True:  # bounded by the call's deadline
                    seen.append(int((await stream.__anext__()).status))
            exit_code = await asyncio.to_thread(server.wait, GRACE + 5)
            took = time.monotonic() - signalled
    finally:
        server.stop()

    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert seen[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
    assert exit_code == 0, server.log
    assert took < GRACE / 2, f"shutdown waited {took:.1f} s for an idle Watch stream"
