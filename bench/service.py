"""authsvc under test: started through its own CLI, watched through /proc.

The benchmark holds the embedded PostgreSQL of its data directory open for
the whole run (pgserver stops it when its last user exits), so the servers
it starts and stops join one database that keeps its contents.

The checkout's package is byte-compiled before its first server starts, as
an installed one is (pip writes the bytecode of what it installs; the Docker
image runs compileall): without it every process of every start compiles
authsvc's modules from source when the environment has
PYTHONDONTWRITEBYTECODE set, about 0.2 s of CPU per worker and a megabyte
or two of memory, which no deployment pays.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from authsvc.runtime.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
# This interpreter's authsvc (the venv scripts/bench bootstrapped, AUTHSVC_VENV
# included), run from ROOT so that this checkout's package is the one imported.
AUTHSVC = [sys.executable, "-m", "authsvc"]
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Memory:
    rss_kib: int  # VmRSS: resident now
    hwm_kib: int  # VmHWM: peak resident


class Service:
    """One ``authsvc serve`` process and its workers."""

    def __init__(self, data_dir: Path, port: int, workers: int,
                 env: Mapping[str, str] | None = None, uvloop: bool = False,
                 source: Path = ROOT) -> None:
        """``source``: the checkout whose ``authsvc`` package runs (another one measures
        a baseline against this one in the same run)."""
        self.data_dir = data_dir
        self.port = port
        self.workers = workers
        self.target = f"127.0.0.1:{port}"
        # The metrics endpoint (on by default) must not collide with another server's.
        self._env = {**os.environ, "AUTHSVC_METRICS_LISTEN": f"127.0.0.1:{port + 1}",
                     **(env or {})}
        if uvloop and workers > 1:  # the workers would run `python -m authsvc.runtime.child`
            raise ValueError("--uvloop measures one worker only (--workers 1)")
        entry = [sys.executable, "-m", "bench.uvloop_serve"] if uvloop else AUTHSVC
        self._argv = [*entry, "serve", "--data-dir", str(data_dir),
                      "--listen", self.target, "--workers", str(workers)]
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = data_dir / f"serve-{port}.log"
        self._source = source
        byte_compiled(source)

    def launch(self) -> None:
        """Exec ``authsvc serve`` and return at once (``start`` waits for it)."""
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(self._argv, stdout=log, stderr=log, env=self._env,
                                          cwd=self._source)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def exited(self) -> str | None:
        """Why the serve process is gone (the tail of its log), or None while it runs."""
        assert self._proc is not None
        return None if self._proc.poll() is None else f"authsvc serve exited: {self._tail()}"

    def start(self, timeout: float = 120.0) -> None:
        """Start and wait for "listening on" in the log (stderr)."""
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if why := self.exited():
                raise RuntimeError(why)
            if f"listening on {self.target}" in self._log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"authsvc serve did not start in {timeout} s: {self._tail()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def worker_pids(self) -> list[int]:
        """The processes that answer RPCs: the serve process itself with one
        worker, else every child of it (whatever starts the workers; a helper
        such as a resource tracker, if there is one, is counted with them)."""
        assert self._proc is not None
        if self.workers == 1:
            return [self._proc.pid]
        return sorted(children(self._proc.pid))

    def processes(self) -> list[int]:
        """The serve process and all its descendants, parents first."""
        assert self._proc is not None
        found, queue = [], [self._proc.pid]
        while queue:
            pid = queue.pop(0)
            found.append(pid)
            queue += sorted(children(pid))
        return found

    def memory(self) -> list[Memory]:
        return [_memory(pid) for pid in self.worker_pids()]

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of all workers and whatever they started
        (a hashing process pool, say); not the supervisor's, with several."""
        total = 0.0
        for pid in self.processes():
            if self.workers == 1 or pid != self.pid:
                with contextlib.suppress(OSError):
                    total += process_cpu_seconds(pid)
        return total

    def _tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:]


@functools.cache
def byte_compiled(source: Path) -> None:
    """Write the bytecode of ``source``'s authsvc package (once per run and checkout;
    up-to-date files are skipped)."""
    if not compileall.compile_dir(source / "authsvc", quiet=1):
        raise RuntimeError(f"{source / 'authsvc'} does not byte-compile")


@contextlib.contextmanager
def embedded_database() -> Iterator[tuple[Path, str]]:
    """A fresh data directory and the URL of its embedded PostgreSQL, held open
    (servers started on the directory join it) and removed at the end."""
    data_dir = Path(tempfile.mkdtemp(prefix="authsvc-bench-"))
    embedded = EmbeddedPostgres(data_dir)
    try:
        yield data_dir, embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


def add_user(data_dir: Path, email: str, password: str,
             env: Mapping[str, str] | None = None, scopes: tuple[str, ...] = ()) -> None:
    flags = [part for scope in scopes for part in ("--scope", scope)]
    subprocess.run([*AUTHSVC, "users", "add", "--email", email, "--password-stdin",
                    "--data-dir", str(data_dir), *flags], input=password.encode(), check=True,
                   env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, cwd=ROOT)


def children(pid: int) -> list[int]:
    """The live children of ``pid`` (none once it is gone)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _memory(pid: int) -> Memory:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return Memory(rss_kib=fields["VmRSS"], hwm_kib=fields["VmHWM"])


def database_cpu_seconds(data_dir: Path) -> float:
    """CPU seconds so far of the embedded PostgreSQL's processes (the postmaster's
    children: the backends and the background workers) that are alive now."""
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for pid in children(postmaster):
        with contextlib.suppress(OSError):
            total += process_cpu_seconds(pid)
    return total


def process_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
