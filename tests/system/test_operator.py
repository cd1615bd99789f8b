"""What an operator meets: a port already taken, a worker killed, a parent killed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest

from authsvc.v1 import auth_pb2_grpc
from authsvc.verifiers import LocalVerifier

from ..helpers import PASSWORD, eventually_blocking, sign_in
from ..servers import AuthsvcProcess, free_port, new_key, server_env, worker_pids


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


def _get(url: str) -> str:
    """GET an http:// URL on loopback (fixed scheme: the metrics endpoint)."""
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (http only)
        return str(reply.read().decode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
        return stat.read().split()[2] != "Z"


def test_a_killed_worker_is_logged_and_replaced(database_url):
    """SIGKILL one of two workers: the parent logs it and starts a replacement that
    serves; the service keeps running."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    try:
        server.start().wait_ready()
        assert server.process is not None
        eventually_blocking(lambda: len(worker_pids(server.process.pid)) == 2, 30, "two workers")
        victim = worker_pids(server.process.pid)[0]

        os.kill(victim, signal.SIGKILL)
        server.wait_for('"msg":"worker exited; replacing it"', timeout=30)
        server.wait_for('"msg":"worker replaced"', timeout=60)
        workers = worker_pids(server.process.pid)
        still_running = server.process.poll() is None
    finally:
        server.stop()

    assert still_running
    assert victim not in workers and len(workers) == 2
    assert f'"pid":{victim},"exit_code":-9' in server.log


def test_the_parent_has_no_child_but_its_workers(database_url):
    """With two workers the parent has exactly two children, both workers: no
    helper process (such as multiprocessing's resource tracker) idles beside them."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    try:
        server.start().wait_ready()
        assert server.process is not None
        eventually_blocking(lambda: len(worker_pids(server.process.pid)) == 2, 30, "two workers")
        every_child = subprocess.run(["pgrep", "-P", str(server.process.pid)],
                                     capture_output=True, text=True, check=False).stdout.split()
        workers = worker_pids(server.process.pid)
    finally:
        server.stop()

    assert sorted(int(pid) for pid in every_child) == sorted(workers)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_start_up_failure_is_one_line_and_its_status_with_any_worker_count(workers):
    """Start-up checks run in the workers: a database nobody listens for stops the
    server with the same one line and exit status 3 with one worker or two, and
    no traceback."""
    port = free_port()
    env = server_env(AUTHSVC_KEY_ENCRYPTION_KEY=new_key(), AUTHSVC_DB_TIMEOUT="2")
    done = subprocess.run(
        [sys.executable, "-m", "authsvc", "serve", "--listen", f"127.0.0.1:{free_port()}",
         "--workers", workers,
         "--database-url", f"postgresql://postgres@127.0.0.1:{port}/authsvc"],
        env=env, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("authsvc: error:")]
    assert errors == [f"authsvc: error: AUTHSVC_DATABASE_URL: cannot reach PostgreSQL at "
                      f"127.0.0.1:{port}, database authsvc: nothing answers there; check the "
                      "host and port, and that it runs"], done.stderr
    assert "Traceback" not in done.stderr


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
        eventually_blocking(lambda: len(worker_pids(server.process.pid)) == 2, 30, "two workers")
        workers = worker_pids(server.process.pid)

        server.process.kill()
        server.process.wait(timeout=10)
        eventually_blocking(lambda: not any(_alive(pid) for pid in workers), 20,
                            "the workers to exit")
    finally:
        server.stop()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_metrics_port_serves_only_metrics_with_process_figures(database_url):
    """/metrics answers with the RPC counters, the supervisor's process_* figures and
    the workers' summed memory; every other path is 404."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    try:
        server.start().wait_ready()
        port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", server.log)
        assert port is not None, server.log
        base = f"http://127.0.0.1:{port[1]}"
        eventually_blocking(
            lambda: "authsvc_workers_resident_memory_bytes " in _get(f"{base}/metrics"),
            30, "the workers' first gauges")
        text = _get(f"{base}/metrics")
        with pytest.raises(urllib.error.HTTPError) as elsewhere:
            _get(f"{base}/")
        elsewhere.value.close()  # an HTTPError is the response, and holds its socket
    finally:
        server.stop()

    assert elsewhere.value.code == 404
    assert "process_resident_memory_bytes" in text
    resident = re.search(r"^authsvc_workers_resident_memory_bytes (\S+)$", text, re.M)
    assert resident is not None and float(resident[1]) > 10 * 2**20


async def test_an_open_revocation_feed_does_not_hold_up_shutdown(database_url):
    """A LocalVerifier's WatchRevocations stream ends at once on SIGTERM, so shutdown
    does not wait out the grace period for it."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_SHUTDOWN_GRACE="20")
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    try:
        server.start().wait_ready()
        added = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "authsvc", "users", "add", "--email", "w@example.com",
             "--scope", "authsvc.revocations", "--password-stdin"],
            input=PASSWORD, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert added.returncode == 0, added.stderr
        async with grpc.aio.insecure_channel(server.address) as channel:
            token = (await sign_in(auth_pb2_grpc.AuthStub(channel), "w@example.com")
                     ).access_token
        async with LocalVerifier(server.address, access_token=lambda: token) as verifier:
            assert verifier.following
            server.signal(signal.SIGTERM)
            started = time.monotonic()
            code = await asyncio.to_thread(server.wait, 30)
            took = time.monotonic() - started
    finally:
        server.stop()

    assert code == 0, server.log
    assert took < 10, f"shutdown waited {took:.1f} s with a feed open (grace 20 s)"


def test_workers_start_when_the_supervisor_is_pid_1(database_url):
    """In a container the supervisor is pid 1 (exec-form ENTRYPOINT): its workers must
    not mistake that for a dead parent."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child=SIGKILL", sys.executable, "-m", "authsvc",
         "serve", "--listen", address, "--workers", "2"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if f"listening on {address}" in line or "error" in line:
                break
    finally:
        for supervisor in _children_of(process.pid):  # unshare passes no signal on
            os.kill(supervisor, signal.SIGTERM)
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()

    assert f"listening on {address} (2 workers)" in lines[-1], "".join(lines)


def _children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                           check=False).stdout.split()
    return [int(p) for p in found]
