"""What an operator meets: a port already taken, a worker killed, a parent killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..servers import AuthsvcProcess, free_port, new_key, server_env


def test_a_second_server_on_a_taken_port_refuses_to_start(database_url, tmp_path):
    """Another authsvc (another database) on a port authsvc already serves exits 2
    with "address in use" instead of sharing the port with it."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    first = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    try:
        first.start().wait_ready()
        second = subprocess.run(
            [sys.executable, "-m", "authsvc", "serve", "--listen", first.address,
             "--workers", "2", "--data-dir", str(tmp_path)],
            env=server_env(), capture_output=True, text=True, timeout=60, check=False)
    finally:
        first.stop()

    assert second.returncode == 2, second.stderr
    assert f"cannot listen on {first.address}: address in use" in second.stderr
    assert not (tmp_path / "postgres").exists()  # refused before anything started


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", "spawn_main"],
                           capture_output=True, text=True, check=False).stdout.split()
    return [int(p) for p in found]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
        return stat.read().split()[2] != "Z"


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_killed_worker_is_logged_and_replaced(database_url):
    """SIGKILL one of two workers: the parent logs it and starts a replacement that
    serves; the service keeps running."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    try:
        server.start().wait_ready()
        assert server.process is not None
        _wait(lambda: len(_children(server.process.pid)) == 2, 30, "two workers")
        victim = _children(server.process.pid)[0]

        os.kill(victim, signal.SIGKILL)
        server.wait_for('"msg":"worker exited; replacing it"', timeout=30)
        server.wait_for('"msg":"worker replaced"', timeout=60)
        workers = _children(server.process.pid)
        still_running = server.process.poll() is None
    finally:
        server.stop()

    assert still_running
    assert victim not in workers and len(workers) == 2
    assert f'"pid":{victim},"exit_code":-9' in server.log


def test_workers_die_with_a_killed_parent(database_url):
    """SIGKILL the parent: its workers get SIGTERM from the kernel and exit, so no
    orphan goes on serving the port."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_SHUTDOWN_GRACE="2")
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    workers: list[int] = []
    try:
        server.start().wait_ready()
        assert server.process is not None
        _wait(lambda: len(_children(server.process.pid)) == 2, 30, "two workers")
        workers = _children(server.process.pid)

        server.process.kill()
        server.process.wait(timeout=10)
        _wait(lambda: not any(_alive(pid) for pid in workers), 20, "the workers to exit")
    finally:
        server.stop()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
