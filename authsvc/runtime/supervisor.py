"""Several worker processes under one parent: started, watched, replaced, and
never outliving it.

- Each worker is a plain child process (``python -m authsvc.runtime.child``).
  The workers are spawned first (``spawn``) and import the service while this
  process starts the embedded database; then each gets its settings and the
  database URL on stdin (``run``), runs the start-up checks, opens its own
  pool, LISTEN connection and gRPC server on the shared port and reports one
  line on a pipe: ready with its port, or why it could not start. This process
  imports none of the service (nor multiprocessing, whose resource tracker
  would be one more process): supervising is all it does.
- The parent waits on every worker's exit at once. A worker that exits while
  the service is running is logged (with its exit code) and replaced, after a
  backoff that grows while replacements keep failing (0.5 s doubling to 10 s,
  jittered) and resets once one has run for a minute; after
  ``MAX_FAILED_STARTS`` replacements in a row that could not start, the parent
  stops everything and exits non-zero.
- A worker asks the kernel to send it SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``), so a SIGKILLed parent takes its workers with it: they
  drain and exit instead of serving on as orphans.
- SIGTERM or SIGINT to the parent: every worker gets SIGTERM and drains.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

from ..config import Settings
from ..core.backoff import Backoff
from ..errors import ConfigError, DatabaseUnreachable
from .logs import log_listening

log = logging.getLogger("authsvc")

MAX_FAILED_STARTS = 5
STARTUP_TIMEOUT = 60.0
HEALTHY_AFTER = 60.0  # a worker that ran this long resets the backoff
CHILD = "authsvc.runtime.child"

Worker = subprocess.Popen[bytes]


class Supervisor:
    """``with Supervisor(settings) as s: s.spawn(); ...; s.run(settings, url)``."""

    def __init__(self, settings: Settings) -> None:
        self._count = settings.workers
        self._listen = settings.listen
        self._grace = settings.shutdown_grace
        self._orders = b""  # pickled (settings, url), once run() has them
        # What the watcher threads saw, per worker in this order: ("ready", worker,
        # report), the report None if it exited first; then ("exit", worker, code).
        self._events: queue.Queue[tuple[str, Worker, Any]] = queue.Queue()
        self._workers: dict[int, Worker] = {}
        self._started_at: dict[int, float] = {}
        self._reports: dict[Worker, Any] = {}  # arrived before they were awaited
        self._exits: list[tuple[Worker, int]] = []  # arrived while awaiting a report
        self._stopping = threading.Event()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._shut_down()

    def spawn(self) -> None:
        """Start every worker; each imports the service, then waits for its orders."""
        for index in range(self._count):
            self._spawn(index)

    def run(self, settings: Settings, url: str) -> int:
        """Give the spawned workers their orders and supervise them until a signal;
        the listening port. Every worker has exited when this returns."""
        self._orders = pickle.dumps((settings, url))
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for process in self._workers.values():
                self._send_orders(process)
            ports = {self._await_ready(index) for index in range(self._count)}
            port = ports.pop()
            log_listening(self._listen, port, self._count)
            self._supervise()
            return port
        finally:
            self._shut_down()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _shut_down(self) -> None:
        self._stop(signal.SIGTERM, None)
        for process in self._workers.values():
            try:
                process.wait(timeout=self._grace + 20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _forget_metrics(process.pid)

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping.set()
        for process in self._workers.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)  # nothing if already reaped

    def _spawn(self, index: int) -> Worker:
        reports, report_end = os.pipe()
        try:
            # The child inherits a blocked SIGINT: ^C at the terminal reaches the whole
            # process group, and only the parent should act on it (by SIGTERM to each
            # worker), not a worker still importing, with a traceback.
            with _blocked(signal.SIGINT):
                process = subprocess.Popen(
                    [sys.executable, "-m", CHILD, str(index), str(os.getpid()), str(report_end)],
                    stdin=subprocess.PIPE, pass_fds=(report_end,))
        except BaseException:
            os.close(reports)
            raise
        finally:
            os.close(report_end)
        self._workers[index] = process
        self._started_at[index] = time.monotonic()
        threading.Thread(target=self._watch, args=(process, os.fdopen(reports, "rb")),
                         name=f"watch-worker-{index}", daemon=True).start()
        return process

    def _send_orders(self, process: Worker) -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError), process.stdin:  # gone: its exit tells
            process.stdin.write(self._orders)

    def _watch(self, process: Worker, reports: IO[bytes]) -> None:
        with reports:
            line = reports.readline()  # b"" when the worker exited before reporting
        self._events.put(("ready", process, json.loads(line) if line else None))
        self._events.put(("exit", process, process.wait()))

    def _next(self, timeout: float) -> tuple[str, Worker, Any] | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _await_ready(self, index: int) -> int:
        """Wait for worker ``index`` to report; its port, or the error why not."""
        process = self._workers[index]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while process not in self._reports:
            if self._stopping.is_set():
                raise KeyboardInterrupt  # a signal while starting: stop quietly
            if time.monotonic() >= deadline:
                raise ConfigError(f"worker {index} did not start within "
                                  f"{STARTUP_TIMEOUT:.0f} s")
            event = self._next(0.2)
            if event is not None and event[0] == "ready":
                self._reports[event[1]] = event[2]  # workers report in any order
            elif event is not None:
                self._exits.append((event[1], event[2]))  # for _supervise
        report = self._reports.pop(process)
        if report is None:
            raise ConfigError(f"worker {index} exited while starting")
        if "error" in report:
            error = DatabaseUnreachable if report.get("unreachable") else ConfigError
            raise error(report["error"])
        return int(report["port"])

    def _next_exit(self) -> tuple[Worker, int] | None:
        if self._exits:
            return self._exits.pop(0)
        event = self._next(1.0)
        return (event[1], event[2]) if event is not None and event[0] == "exit" else None

    def _supervise(self) -> None:
        backoff, failed_starts = Backoff(initial=0.5, maximum=10.0), 0
        while not self._stopping.is_set():
            exited = self._next_exit()
            index = next((i for i, p in self._workers.items()
                          if exited is not None and p is exited[0]), None)
            if exited is None or index is None or self._stopping.is_set():
                continue  # nothing, an earlier worker's exit, or stopping anyway
            dead, exit_code = exited
            _forget_metrics(dead.pid)
            ran = time.monotonic() - self._started_at[index]
            log.error("worker exited; replacing it", extra={"fields": {
                "worker": index, "pid": dead.pid, "exit_code": exit_code,
                "ran_s": round(ran, 1)}})
            if ran >= HEALTHY_AFTER:
                backoff.reset()
            while not self._stopping.is_set():
                if self._stopping.wait(backoff.next()):
                    return
                self._send_orders(self._spawn(index))
                try:
                    self._await_ready(index)
                except (ConfigError, DatabaseUnreachable) as exc:
                    failed_starts += 1
                    log.error("replacement worker could not start", extra={"fields": {
                        "worker": index, "error": str(exc), "attempt": failed_starts}})
                    if failed_starts >= MAX_FAILED_STARTS:
                        raise ConfigError(f"worker {index} could not be replaced: "
                                          f"{exc}") from None
                    continue
                failed_starts = 0
                log.info("worker replaced", extra={"fields": {
                    "worker": index, "pid": self._workers[index].pid}})
                break


@contextlib.contextmanager
def _blocked(sig: signal.Signals) -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _forget_metrics(pid: int) -> None:
    """With several workers, drop a dead worker's live gauges from the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
