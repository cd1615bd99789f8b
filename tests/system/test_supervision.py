"""Supervision tells a crash from a mistake: a worker killed by a signal, even again
and again while it starts, is replaced after a growing backoff while the others
keep serving, and counted in /metrics; a replacement that cannot start because
the configuration is wrong still stops the server."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request
from urllib.parse import urlsplit

import asyncpg
import grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import eventually_blocking
from ..servers import AuthsvcProcess, free_port, new_key, server_env, worker_pids

KILLS_WHILE_STARTING = 5  # as many failed starts in a row as used to stop the server


def _restarts(metrics_port: int) -> dict[str, float]:
    """authsvc_worker_restarts_total by cause, as /metrics shows it."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {cause: float(value) for cause, value in re.findall(
        r'^authsvc_worker_restarts_total\{cause="(\w+)"\} (\S+)$', text, re.MULTILINE)}


def test_a_worker_killed_whenever_it_starts_never_takes_the_healthy_one_down(database_url):
    """SIGKILL one of two workers, then each replacement as soon as it appears, five
    times: the other worker answers every call throughout, the parent keeps running,
    the sixth replacement serves, and /metrics counts six restarts by signal."""
    metrics_port = free_port()
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_METRICS_LISTEN=f"127.0.0.1:{metrics_port}")
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    answered, errors = 0, []
    try:
        server.start().wait_ready()
        assert server.process is not None
        parent = server.process.pid
        eventually_blocking(lambda: len(worker_pids(parent)) == 2, 30, "two workers")
        healthy, victim = worker_pids(parent)
        before = _restarts(metrics_port)
        os.kill(victim, signal.SIGKILL)
        killed = [victim]
        with grpc.insecure_channel(server.address) as channel:
            jwks = auth_pb2_grpc.AuthStub(channel).GetJwks
            deadline = time.monotonic() + 120
            while len(killed) <= KILLS_WHILE_STARTING:
                assert time.monotonic() < deadline, f"only {len(killed)} kills:\n{server.log}"
                assert server.process.poll() is None, server.log
                for pid in worker_pids(parent):
                    if pid not in (healthy, *killed):
                        os.kill(pid, signal.SIGKILL)  # still importing: long before ready
                        killed.append(pid)
                try:
                    jwks(auth_pb2.GetJwksRequest(), timeout=5)
                    answered += 1
                except grpc.RpcError as error:
                    errors.append(error.code())  # type: ignore[attr-defined]
            server.wait_for('"msg":"worker replaced"', timeout=60)
            jwks(auth_pb2.GetJwksRequest(), timeout=5)
        workers = worker_pids(parent)
        after = _restarts(metrics_port)
        still_running = server.process.poll() is None
    finally:
        server.stop()

    assert still_running
    assert errors == []
    assert answered > 0
    assert healthy in workers and len(workers) == 2
    assert before == {"signal": 0.0, "exit": 0.0}
    assert after == {"signal": 1.0 + KILLS_WHILE_STARTING, "exit": 0.0}
    assert server.log.count('"msg":"worker died while starting; replacing it"') \
        == KILLS_WHILE_STARTING
    assert '"signal":"SIGKILL"' in server.log
    assert "could not be replaced" not in server.log


def test_a_replacement_that_cannot_start_for_a_configuration_error_stops_the_server(
        database_url, pg_admin_url):
    """The database is dropped, then a worker is killed: each replacement exits 2
    ("no such database"), and after five in a row the parent stops the other worker
    and exits 2 itself, naming the cause."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    try:
        server.start().wait_ready()
        assert server.process is not None
        eventually_blocking(lambda: len(worker_pids(server.process.pid)) == 2, 30, "two workers")
        asyncio.run(_drop(pg_admin_url, urlsplit(database_url).path.lstrip("/")))
        os.kill(worker_pids(server.process.pid)[0], signal.SIGKILL)
        code = server.wait(120)
    finally:
        server.stop()

    assert code == 2, server.log
    assert "could not be replaced" in server.log
    assert "no such database" in server.log
    assert server.log.count('"msg":"replacement worker could not start"') == 5


async def _drop(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
