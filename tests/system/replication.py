"""A PostgreSQL primary and a streaming standby of its own, made with the binaries
of the pgserver wheel (the ones the embedded default runs): ``initdb``,
``pg_basebackup -R``, ``pg_ctl``. Both listen on 127.0.0.1 on ports of their own,
so a multi-host URL can name them, and each can be frozen (SIGSTOP: the kernel
still accepts TCP connections, nothing answers), killed, or promoted.

Used by the failover tests and by ``bench/replication.py``. Everything runs as
the ``pgserver`` user when this process is root (PostgreSQL refuses root), with
``runuser`` rather than a forked ``user=`` child (a fork of a process running
gRPC's threads can crash before it execs). ``Cluster.close`` leaves no process
behind, frozen or not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

SYSTEM_USER = "pgserver"


def _bin() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _as_postgres() -> list[str]:
    return ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []


def _run(*command: str, timeout: float = 120) -> None:
    result = subprocess.run([*_as_postgres(), *command], capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_root(prefix: str) -> Path:
    """A fresh directory the PostgreSQL user owns."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o755)  # noqa: S103 (the pgserver user must reach its data directories)
    if os.geteuid() == 0:
        import pwd

        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(_bin())
        ensure_folder_permissions(_bin(), 0o055)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    return root


def init_template(root: Path, *, fsync: bool) -> Path:
    """An initialised, stopped primary data directory with database ``authsvc``
    and replication allowed from 127.0.0.1: copy it for each cluster (initdb is
    the slow part of making one)."""
    pgdata = root / "template"
    _run(str(_bin() / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres",
         "--encoding=utf8", "--no-sync")
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\n# authsvc failover tests\n"
                   "listen_addresses = '127.0.0.1'\n"
                   f"unix_socket_directories = '{root}'\n"
                   "max_connections = 60\nshared_buffers = 16MB\n"
                   "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                   f"fsync = {'on' if fsync else 'off'}\n"
                   # Freezing a server leaves its clients' sessions open; reap
                   # walsenders of a frozen standby before the test ends anyway.
                   "wal_sender_timeout = 10s\n")
    node = Node("template", pgdata, _free_port(), root)
    node.start()
    try:
        _run(str(_bin() / "psql"), "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres",
             "-q", "-c", "CREATE DATABASE authsvc")
    finally:
        node.stop()
    return pgdata


class Node:
    """One PostgreSQL server: its data directory, port and processes."""

    def __init__(self, name: str, pgdata: Path, port: int, socket_dir: Path) -> None:
        self.name = name
        self.pgdata = pgdata
        self.port = port
        self._socket_dir = socket_dir

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str = "authsvc") -> str:
        return f"postgresql://postgres@{self.address}/{database}"

    def start(self) -> None:
        _run(str(_bin() / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60",
             "-o", f"-p {self.port}", "-l", str(self.pgdata / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        _run(str(_bin() / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        """Make this standby the primary; returns once it takes writes."""
        _run(str(_bin() / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60", "promote")

    def postmaster(self) -> psutil.Process | None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            return psutil.Process(pid)
        except (FileNotFoundError, IndexError, ValueError, psutil.NoSuchProcess):
            return None

    def processes(self) -> list[psutil.Process]:
        """The postmaster first, then every process it started."""
        postmaster = self.postmaster()
        if postmaster is None:
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            return [postmaster, *postmaster.children(recursive=True)]
        return []

    def walreceiver(self) -> psutil.Process:
        """This standby's WAL receiver: the process that keeps it streaming."""
        for process in self.processes()[1:]:
            with contextlib.suppress(psutil.NoSuchProcess):
                if "walreceiver" in " ".join(process.cmdline()):
                    return process
        raise AssertionError(f"{self.name} has no walreceiver")

    def freeze(self) -> None:
        """SIGSTOP every process of the server (postmaster first, so it starts no
        new ones): connections are still accepted by the kernel, nothing answers."""
        _signal(self.processes(), signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL every process of the server, frozen or not, and wait for them."""
        processes = self.processes()
        _signal(processes, signal.SIGKILL)
        psutil.wait_procs(processes, timeout=30)


def _signal(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signum)


class Cluster:
    """A primary (a copy of the template) and a standby streaming from it,
    synchronous (``synchronous_standby_names = '*'``, ``synchronous_commit = on``)
    unless told otherwise."""

    def __init__(self, root: Path, template: Path, *, synchronous: bool = True) -> None:
        self.root = root
        self.primary = Node("primary", root / "primary", _free_port(), root)
        self.standby = Node("standby", root / "standby", _free_port(), root)
        self._nodes = [self.primary, self.standby]
        try:
            _run("cp", "-a", str(template), str(self.primary.pgdata))
            with (self.primary.pgdata / "postgresql.conf").open("a") as conf:
                names = "*" if synchronous else ""
                conf.write(f"synchronous_standby_names = '{names}'\nsynchronous_commit = on\n")
            self.primary.start()
            _run(str(_bin() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
                 "-U", "postgres", "-D", str(self.standby.pgdata), "-R", "-X", "stream",
                 "-c", "fast", "--no-sync")
            with (self.standby.pgdata / "postgresql.conf").open("a") as conf:
                # Promoted, it has no standby of its own: it must not wait for one.
                conf.write("synchronous_standby_names = ''\n")
            self.standby.start()
        except BaseException:
            self.close()
            raise

    def url(self, *, attrs: str | None = "read-write") -> str:
        """The multi-host URL, primary first."""
        query = f"?target_session_attrs={attrs}" if attrs else ""
        return (f"postgresql://postgres@{self.primary.address},{self.standby.address}"
                f"/authsvc{query}")

    def close(self) -> None:
        """Kill both servers (frozen ones too) and remove their files."""
        for node in self._nodes:
            node.kill()
        shutil.rmtree(self.root / "primary", ignore_errors=True)
        shutil.rmtree(self.root / "standby", ignore_errors=True)


@contextlib.contextmanager
def cluster(root: Path, template: Path, *, synchronous: bool = True) -> Iterator[Cluster]:
    made = Cluster(root, template, synchronous=synchronous)
    try:
        yield made
    finally:
        made.close()


async def streaming(primary_url: str, *, synchronous: bool) -> bool:
    """Whether the primary has a standby streaming (as its synchronous standby)."""
    import asyncpg

    conn = await asyncpg.connect(primary_url, timeout=10)
    try:
        rows = await conn.fetch("SELECT state, sync_state FROM pg_stat_replication")
    finally:
        await conn.close()
    wanted = ("streaming", "sync" if synchronous else "async")
    return any((r["state"], r["sync_state"]) == wanted for r in rows)
