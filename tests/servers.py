"""``authsvc serve`` as a child process, for the shutdown, replica and outage tests.

The child's stderr (one JSON log line per event) is drained by a thread, so a
chatty server never blocks on a full pipe; tests wait for a line by polling
with a deadline (``tests.helpers.eventually``), never by sleeping a fixed time.

Every process the tests start gets SIGINT at its default action, as from an
interactive shell, even when pytest itself was started with SIGINT ignored (a
background job: ``scripts/test &``, nohup, some CI runners), which its children
would otherwise inherit: see ``_children_take_sigint``.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from authsvc.runtime.supervisor import CHILD

from .helpers import eventually_blocking

STARTUP_TIMEOUT = 60.0


def _children_take_sigint() -> None:
    """If this process ignores SIGINT, catch it with a handler that does nothing.

    For pytest that is the same as ignoring it. But exec keeps an ignored signal
    ignored and resets a caught one to its default action, so every child started
    from here on (``authsvc serve`` above all, whose ^C handling the tests check)
    starts as it would from an interactive shell. Popen cannot do this itself:
    ``restore_signals`` covers SIGPIPE and SIGXFSZ only, and a ``preexec_fn`` runs
    Python in a forked copy of a process with threads. Handlers are the main
    thread's to set; this runs once, when the tests import this module."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) == signal.SIG_IGN):
        signal.signal(signal.SIGINT, lambda _signum, _frame: None)


_children_take_sigint()


def worker_pids(pid: int) -> list[int]:
    """The worker processes ``authsvc serve`` (pid ``pid``) runs as its children."""
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", CHILD],
                           capture_output=True, text=True, check=False).stdout.split()
    return [int(p) for p in found]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_key() -> str:
    """A fresh key-encryption key, as AUTHSVC_KEY_ENCRYPTION_KEY takes it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def server_env(**overrides: str) -> dict[str, str]:
    """This process's environment without AUTHSVC_*, plus test defaults and ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env["AUTHSVC_ARGON2_PROFILE"] = "test-only-cheapest"
    # Its default port would clash between servers; port 0 picks a free one.
    env["AUTHSVC_METRICS_LISTEN"] = "127.0.0.1:0"
    env.update(overrides)
    return env


class AuthsvcProcess:
    """One ``python -m authsvc serve`` child listening on 127.0.0.1:``port``
    (``python_options`` go to the interpreter, before ``-m``)."""

    def __init__(self, port: int, env: dict[str, str], args: Sequence[str] = (),
                 python_options: Sequence[str] = ()) -> None:
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self._env = env
        self._args = list(args)
        self._python_options = list(python_options)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> AuthsvcProcess:
        self._lines = []
        self.process = subprocess.Popen(
            [sys.executable, *self._python_options, "-m", "authsvc", "serve",
             "--listen", self.address, *self._args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=self._env)
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        return self

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        with process.stderr:  # closed at its end, not left to the garbage collector
            for line in process.stderr:
                with self._lock:
                    self._lines.append(line)

    @property
    def log(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until a log line contains ``text``; fail if the process exits first."""
        process = self.process
        assert process is not None

        def appeared() -> bool:
            if text in self.log:
                return True
            assert process.poll() is None, f"exited before {text!r} appeared:\n{self.log}"
            return False

        eventually_blocking(appeared, timeout, lambda: f"{text!r} in the log:\n{self.log}")

    def wait_ready(self) -> AuthsvcProcess:
        self.wait_for(f"listening on {self.address}")
        return self

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Make sure the child is gone (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def stop_all(servers: Sequence[AuthsvcProcess]) -> None:
    """SIGTERM every running server at once, then wait for each."""
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.signal(signal.SIGTERM)
    for server in servers:
        server.stop()


def postmaster_pid(data_dir: Path) -> Path:
    """Where the embedded PostgreSQL of ``authsvc serve --data-dir`` records its pid."""
    return data_dir / "postgres" / "postmaster.pid"
