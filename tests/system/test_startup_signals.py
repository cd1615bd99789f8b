"""A signal at any moment of start-up is a quiet exit with the embedded PostgreSQL
stopped, and a server left running by a killed run is adopted, then stopped.

The earliest moment tested is the first import of authsvc's own modules: before
it, a ^C meets the interpreter's start-up, which is CPython's (see
``authsvc/__main__.py``). The servers are started with ``-X importtime``, whose
line per finished import marks that moment.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from ..helpers import eventually_blocking
from ..servers import AuthsvcProcess, free_port, postmaster_pid, server_env, worker_pids

STARTING = 60.0  # how long each moment of a start may take to come


# -X importtime's line for authsvc.runtime: the first import after the entry point's
# first statement (authsvc.runtime.cli's own imports follow).
RUNTIME_IMPORTED = re.compile(r"^import time:.*\|\s+authsvc\.runtime$", re.MULTILINE)

MOMENTS = {
    # authsvc's modules are importing (the entry point has run, cli.main not yet)
    "importing": lambda server, data: eventually_blocking(
        lambda: RUNTIME_IMPORTED.search(server.log) is not None, STARTING,
        "authsvc.runtime to be imported", interval=0.001),
    # the embedded PostgreSQL has just started
    "database-up": lambda server, data: eventually_blocking(
        lambda: postmaster_pid(data).exists(), STARTING, "the embedded PostgreSQL",
        interval=0.01),
    # the workers exist but are not ready yet
    "workers-spawning": lambda server, data: eventually_blocking(
        lambda: len(worker_pids(server.process.pid)) >= 1, STARTING, "a worker process",
        interval=0.01),
    # serving
    "serving": lambda server, data: server.wait_ready(),
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("moment", MOMENTS.values(), ids=MOMENTS.keys())
def test_a_signal_during_start_up_exits_quietly_and_stops_the_database(
        tmp_path: Path, moment, signum):
    """SIGINT (^C) or SIGTERM at any moment of a first start: the process exits on its
    own, prints no traceback, and leaves no embedded PostgreSQL running."""
    server = AuthsvcProcess(free_port(), server_env(),
                            ["--data-dir", str(tmp_path), "--workers", "2"],
                            python_options=["-X", "importtime"])
    try:
        server.start()
        moment(server, tmp_path)
        server.signal(signum)
        code = server.wait(60)
    finally:
        server.stop()

    # 130 once cli.main handles signals; before (while importing), the signal's own
    # default action, when nothing has started yet.
    assert code in (0, 130, -signum), server.log
    assert "Traceback" not in server.log
    assert "Fatal Python error" not in server.log
    eventually_blocking(lambda: not postmaster_pid(tmp_path).exists(), 30,
                        "the embedded PostgreSQL to stop")


def test_a_server_left_by_a_killed_run_is_adopted_and_then_stopped(tmp_path: Path):
    """SIGKILL leaves the embedded PostgreSQL running; the next start adopts it and,
    when that run ends, stops it."""
    first = AuthsvcProcess(free_port(), server_env(), ["--data-dir", str(tmp_path),
                                                       "--workers", "1"])
    second = AuthsvcProcess(free_port(), server_env(), ["--data-dir", str(tmp_path),
                                                        "--workers", "1"])
    try:
        first.start().wait_ready()
        assert first.process is not None
        first.process.kill()
        first.process.wait(10)
        left_running = postmaster_pid(tmp_path).exists()

        second.start().wait_ready()
        second.signal(signal.SIGTERM)
        code = second.wait(60)
    finally:
        first.stop()
        second.stop()

    assert left_running
    assert code == 0, second.log
    eventually_blocking(lambda: not postmaster_pid(tmp_path).exists(), 30,
                        "the adopted PostgreSQL to stop")
