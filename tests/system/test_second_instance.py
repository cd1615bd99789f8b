"""A second local authsvc beside a running one: a taken metrics port is refused
up front with a hint, as a taken gRPC port is, and the second instance that
scripts/serve's header suggests starts as written."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT
from ..helpers import eventually_blocking
from ..servers import AuthsvcProcess, free_port, server_env

AUTHSVC = Path(sys.executable).parent / "authsvc"  # the console script scripts/serve runs


def _suggested_second_instance() -> tuple[dict[str, str], list[str]]:
    """The variables and the arguments of the example in scripts/serve's header:
    the comment line with ``scripts/serve --listen``."""
    header = []
    for line in (ROOT / "scripts/serve").read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#"))
    [example] = [line for line in header if "scripts/serve --listen" in line]
    words = shlex.split(example)
    at = start = words.index("scripts/serve")
    while start > 0 and re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", words[start - 1]):
        start -= 1
    return dict(word.split("=", 1) for word in words[start:at]), words[at + 1:]


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes],
              timeout: float = 60.0) -> None:
    def appeared() -> bool:
        if text in path.read_text():
            return True
        assert process.poll() is None, f"exited {process.returncode}:\n{path.read_text()}"
        return False

    eventually_blocking(appeared, timeout, lambda: f"{text!r} in\n{path.read_text()}")


def test_a_taken_metrics_port_is_refused_before_anything_starts(tmp_path: Path):
    """With AUTHSVC_METRICS_LISTEN on a port something listens on, `authsvc serve`
    exits 2 with one line naming the variable and the remedies, before it starts
    the embedded PostgreSQL."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "authsvc", "serve", "--listen", f"127.0.0.1:{free_port()}",
             "--data-dir", str(tmp_path)],
            env=server_env(AUTHSVC_METRICS_LISTEN=metrics), capture_output=True, text=True,
            timeout=60, check=False)

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"authsvc: error: AUTHSVC_METRICS_LISTEN: cannot listen on {metrics}: address in use "
        "(another process listens there; stop it, choose another port, or set "
        "AUTHSVC_METRICS_LISTEN=off)")
    assert not (tmp_path / "postgres").exists()


def test_the_second_instance_scripts_serve_suggests_starts_beside_the_first(tmp_path: Path):
    """The command in scripts/serve's header, run beside a first instance of the same
    checkout (same data directory, same environment, so the same metrics port),
    starts, shares the embedded database, serves, and stops cleanly on SIGTERM."""
    variables, args = _suggested_second_instance()
    listen = args.index("--listen") + 1
    # The header's port differs from the first instance's (the default); a test on
    # a shared machine takes a free one instead of the fixed one.
    assert args[listen].rpartition(":")[2] != "50051"
    args[listen] = f"127.0.0.1:{free_port()}"
    assert (ROOT / "scripts/serve").read_text().rstrip().endswith(
        '/bin/authsvc" serve "$@"')  # the arguments go to `authsvc serve`
    env = server_env(AUTHSVC_METRICS_LISTEN=f"127.0.0.1:{free_port()}")
    first = AuthsvcProcess(free_port(), env, ["--data-dir", str(tmp_path / ".authsvc"),
                                              "--workers", "1"])
    log = tmp_path / "second.log"
    try:
        first.start().wait_ready()
        with log.open("w") as stderr:
            second = subprocess.Popen([AUTHSVC, "serve", *args], cwd=tmp_path,
                                      env={**env, **variables}, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            _wait_for(log, f"listening on {args[listen]}", second)
            second.send_signal(signal.SIGTERM)
            code = second.wait(60)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(10)
    finally:
        first.stop()

    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
