"""The embedded default: a real PostgreSQL from the pgserver wheel.

With no ``AUTHSVC_DATABASE_URL``, authsvc keeps its database in
``<data dir>/postgres`` and the key-encryption key in
``<data dir>/key-encryption-key`` (created with mode 0600 on first start).
This is the zero-configuration default for trying authsvc out and for tests;
production points ``AUTHSVC_DATABASE_URL`` at its own PostgreSQL and passes
the key in ``AUTHSVC_KEY_ENCRYPTION_KEY`` or ``AUTHSVC_KEY_ENCRYPTION_KEY_FILE``.

pgserver counts the processes using a data directory (``.handle_pids.json``)
and stops the server when the last one exits, so the CLI can run beside
``authsvc serve``. A process killed outright (SIGKILL) never takes its pid off
that list, and the server would then never stop; so before joining, the list
is pruned of processes that no longer exist, under pgserver's own lock: a
server left running by a killed run is adopted, and stopped when this run ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..config import Secret, encode_key, read_key_file
from ..errors import ConfigError

DATABASE = "authsvc"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return the URL of the authsvc database."""
        import pgserver  # imported late: only the embedded default needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), _signals_deferred():
            warnings.simplefilter("ignore")
            _forget_dead_handles(self.data_dir / "postgres")
            try:
                self._server = pgserver.get_server(  # type: ignore[attr-defined]
                    self.data_dir / "postgres", cleanup_mode="stop")
            except Exception as exc:
                raise ConfigError(
                    f"AUTHSVC_DATA_DIR: cannot start the embedded PostgreSQL in "
                    f"{self.data_dir}: {type(exc).__name__}") from None
        exists = self._server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")  # noqa: S608 (a constant)
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE};")
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql://postgres@/{DATABASE}?host={quote(str(socket_dir))}"

    def stop(self) -> None:
        """Let go of the server; it stops when no other process uses it."""
        if self._server is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server.cleanup()
            self._server = None


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while pgserver starts (or joins) the server: stopped
    half-way, it would leave a server running that nothing owns. A signal that
    came meanwhile is acted on (as ^C) as soon as the server is ours to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that are gone from pgserver's handle list."""
    import psutil
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with PostgresServer._lock:  # pgserver's inter-process lock around that list
        pids = DiskList(handles)
        alive = [pid for pid in pids.get() if _alive(psutil, pid)]
        pids.put(alive)


def _alive(psutil: Any, pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def key_encryption_key(data_dir: Path) -> Secret[bytes]:
    """The data directory's key-encryption key, created on first use."""
    path = data_dir / "key-encryption-key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(encode_key(secrets.token_bytes(32)) + "\n")
    return read_key_file(path)
