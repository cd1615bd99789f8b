"""Start → first successful sign-in, on a data directory that already exists.

The realistic case is a restart: the data directory is migrated, has its keys
and a user, and its embedded PostgreSQL is not running (nothing else holds
it), so ``authsvc serve`` starts PostgreSQL too. ``prepare`` makes such a
directory once (a user, one serve with one sign-in, stopped); ``measure``
then execs ``authsvc serve --workers N`` on it and polls SignIn over gRPC
every 20 ms, each poll on a new channel (a channel's reconnect backoff would
otherwise decide when the poll after a refused connection happens), until
one returns OK. The server is stopped and its PostgreSQL gone before the next
start. The same is measured on the benchmark's own data directory, whose
PostgreSQL the benchmark holds (``warm``): what start-up costs without the
database's.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from .service import Service, add_user, running

POLL = 0.02
EMAIL = "restart@example.com"
TIMEOUT = 120.0


def prepare(port: int, env: Mapping[str, str], password: str) -> Path:
    """A data directory with a user, keys and a completed sign-in, its
    PostgreSQL stopped. The caller removes it."""
    data_dir = Path(tempfile.mkdtemp(prefix="authsvc-bench-restart-"))
    add_user(data_dir, EMAIL, password, env)
    with running(Service(data_dir, port, 1, env)) as service:
        _sign_in(service, EMAIL, password)
    _await_database_stopped(data_dir)
    return data_dir


def measure(data_dir: Path, port: int, workers: int, env: Mapping[str, str], email: str,
            password: str, rounds: int, *, cold: bool) -> dict[str, Any]:
    """``rounds`` starts; with ``cold`` each waits for the data directory's
    PostgreSQL to stop before the next one."""
    seconds = []
    for _ in range(rounds):
        service = Service(data_dir, port, workers, env)
        try:
            started = time.monotonic()
            service.launch()
            _sign_in(service, email, password)
            seconds.append(time.monotonic() - started)
        finally:
            service.stop()
        if cold:
            _await_database_stopped(data_dir)
    return {"seconds": [round(s, 3) for s in seconds], "median": statistics.median(seconds),
            "workers": workers, "cold_database": cold}


def _sign_in(service: Service, email: str, password: str) -> None:
    """Poll SignIn until it returns OK."""
    request = auth_pb2.SignInRequest(email=email, password=password)
    deadline = time.monotonic() + TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if why := service.exited():
            raise RuntimeError(why)
        with grpc.insecure_channel(service.target) as channel:
            try:
                auth_pb2_grpc.AuthStub(channel).SignIn(request, timeout=30)
                return
            except grpc.RpcError as exc:  # refused while starting: UNAVAILABLE
                last = f"{exc.code()}"
        time.sleep(POLL)
    raise RuntimeError(f"no successful SignIn within {TIMEOUT:.0f} s (last: {last})")


def _await_database_stopped(data_dir: Path) -> None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    deadline = time.monotonic() + 60
    while pid_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the embedded PostgreSQL of {data_dir} did not stop")
        time.sleep(0.1)
