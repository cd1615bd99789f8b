"""The gateway spreads its calls over every authsvc worker.

authsvc's workers share one port with SO_REUSEPORT, which hands each
*connection* to one worker; the gateway keeps ``--upstream-connections``
connections and takes turns on them (its Go tests show the turns), so the
calls of one HTTP client reach every worker. (With 16 connections the kernel
puts all on one of two workers with odds 2^-15.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..servers import free_port, worker_pids
from .test_gateway import Process, bearer, call, gateway_binary
from .test_go_verifier import go_env

pytestmark = pytest.mark.go
__all__ = ["gateway_binary", "go_env"]  # fixtures shared with the gateway's tests


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(match.group(1))
    return inodes


def _established_to(port: int) -> Iterator[str]:
    """Inodes of the established TCP sockets whose local port is ``port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                yield inode


def test_the_gateways_calls_reach_every_worker(go_env: dict[str, str],
                                               gateway_binary: Path) -> None:
    """With two authsvc workers and a gateway of 16 connections, both workers hold
    connections from the gateway, and calls through it keep succeeding."""
    authsvc = Process([go_env["AUTHSVC_TEST_BIN"], "serve", "--listen",
                       f"127.0.0.1:{free_port()}",
                       "--workers", "2", "--database-url", go_env["AUTHSVC_TEST_DATABASE_URL"]],
                      env={"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
                           "AUTHSVC_METRICS_LISTEN": "127.0.0.1:0",
                           "AUTHSVC_SHUTDOWN_GRACE": "0.5",
                           "AUTHSVC_KEY_ENCRYPTION_KEY": go_env["AUTHSVC_KEY_ENCRYPTION_KEY"]})
    gateway = None
    try:
        upstream = authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
        gateway = Process([str(gateway_binary), "--listen", "127.0.0.1:0", "--upstream",
                           upstream, "--upstream-connections", "16"])
        address = gateway.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)

        replies = [call(address, "POST", "/v1/auth/validate", {}, bearer("abc.def.ghi"))
                   for _ in range(64)]
        port = int(upstream.rsplit(":", 1)[1])
        held = {pid: len(_socket_inodes(pid) & set(_established_to(port)))
                for pid in worker_pids(authsvc.proc.pid)}
    finally:
        if gateway is not None:
            gateway.stop()
        authsvc.stop()

    assert {r.status for r in replies} == {401}
    assert {r.reason() for r in replies} == {"TOKEN_INVALID"}
    assert len(held) == 2 and all(held.values()), held
    assert sum(held.values()) == 16, held
