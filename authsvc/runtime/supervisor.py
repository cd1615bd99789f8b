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
- The parent waits on every worker's report and exit at once, in one loop
  (``_supervise``), so a worker starting never holds up noticing another's death.
- A worker that dies, serving or starting, is logged (with its exit code) and
  replaced after a backoff of its own (0.5 s doubling to 10 s, jittered) that
  resets once a worker in its place has run for a minute; every replacement
  counts in ``authsvc_worker_restarts_total{cause}`` (``signal`` or ``exit``).
  The other workers keep serving meanwhile, however often it dies: a death by
  a signal (SIGKILL from an operator or the OOM killer, a segfault) says
  nothing about the configuration.
- A worker that reports it cannot start (exit status 2, a configuration error;
  3, the database unreachable; or exits without a report) is a mistake, not a
  crash: during the first start the parent stops everything at once and exits
  with that status; a replacement gets ``MAX_FAILED_STARTS`` tries in a row
  before the parent stops everything the same way.
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
from .metrics import count_worker_restart, declare_worker_restarts

log = logging.getLogger("authsvc")

MAX_FAILED_STARTS = 5
STARTUP_TIMEOUT = 60.0
HEALTHY_AFTER = 60.0  # a worker that ran this long resets its index's backoff
RESTART_INITIAL, RESTART_MAXIMUM = 0.5, 10.0  # seconds before a replacement starts
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
        self._ordered_at: dict[int, float] = {}  # when the current worker got its orders
        self._ready_at: dict[int, float] = {}  # indexes whose current worker serves
        self._refused: dict[int, Exception] = {}  # it reported that it cannot start
        self._respawn_at: dict[int, float] = {}  # dead, replaced at this time
        self._backoffs = {index: Backoff(RESTART_INITIAL, RESTART_MAXIMUM)
                          for index in range(self._count)}
        self._failed_starts = dict.fromkeys(range(self._count), 0)
        self._port: int | None = None  # once every worker has been ready
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
            declare_worker_restarts()
            for index in self._workers:
                self._send_orders(index)
            self._supervise()
            if self._port is None:
                raise KeyboardInterrupt  # a signal while starting: stop quietly
            return self._port
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
        self._ready_at.pop(index, None)
        self._refused.pop(index, None)
        threading.Thread(target=self._watch, args=(process, os.fdopen(reports, "rb")),
                         name=f"watch-worker-{index}", daemon=True).start()
        return process

    def _send_orders(self, index: int) -> None:
        process = self._workers[index]
        self._ordered_at[index] = time.monotonic()
        stdin = process.stdin
        if stdin is None:  # never: every worker is started with stdin=PIPE
            raise RuntimeError("worker started without its orders pipe")
        with contextlib.suppress(BrokenPipeError), stdin:  # gone: its exit tells
            stdin.write(self._orders)

    def _watch(self, process: Worker, reports: IO[bytes]) -> None:
        with reports:
            line = reports.readline()  # b"" when the worker exited before reporting
        self._events.put(("ready", process, json.loads(line) if line else None))
        self._events.put(("exit", process, process.wait()))

    def _supervise(self) -> None:
        """Until a signal: note reports and exits as they come, replace the dead
        when their backoff is over. Raises when a worker cannot start (see the
        module's docstring)."""
        while not self._stopping.is_set():
            now = time.monotonic()
            for index, when in list(self._respawn_at.items()):
                if when <= now:
                    del self._respawn_at[index]
                    self._spawn(index)
                    self._send_orders(index)
            self._check_start_up_time(now)
            wait = min([0.2, *(when - now for when in self._respawn_at.values())])
            try:
                kind, process, detail = self._events.get(timeout=max(wait, 0.0))
            except queue.Empty:
                continue
            which = next((i for i, p in self._workers.items() if p is process), None)
            if which is None or self._stopping.is_set():
                continue  # a worker already replaced, or stopping anyway
            if kind == "ready" and detail is not None:
                self._reported(which, detail)
            elif kind == "exit":
                self._exited(which, process, detail)

    def _check_start_up_time(self, now: float) -> None:
        for index in self._workers:
            starting = index not in self._ready_at and index not in self._respawn_at \
                and index not in self._refused
            if starting and now - self._ordered_at.get(index, now) > STARTUP_TIMEOUT:
                raise ConfigError(f"worker {index} did not start within "
                                  f"{STARTUP_TIMEOUT:.0f} s")

    def _reported(self, index: int, report: dict[str, Any]) -> None:
        if "error" in report:
            error = DatabaseUnreachable if report.get("unreachable") else ConfigError
            self._refused[index] = error(report["error"])  # judged at its exit
            return
        self._ready_at[index] = time.monotonic()
        self._failed_starts[index] = 0
        if self._port is None:
            if len(self._ready_at) == self._count:
                self._port = int(report["port"])
                log_listening(self._listen, self._port, self._count)
        else:
            log.info("worker replaced", extra={"fields": {
                "worker": index, "pid": self._workers[index].pid}})

    def _exited(self, index: int, dead: Worker, exit_code: int) -> None:
        """Worker ``index`` is gone: replace it after its backoff, or give up."""
        _forget_metrics(dead.pid)
        ready_at = self._ready_at.pop(index, None)
        refused = self._refused.pop(index, None)
        if ready_at is None and refused is None and exit_code >= 0:
            # Gone before reporting, of its own accord: it could not even start.
            refused = ConfigError(f"worker {index} exited while starting")
        fields: dict[str, object] = {"worker": index, "pid": dead.pid, "exit_code": exit_code}
        if exit_code < 0:
            fields["signal"] = _signal_name(-exit_code)
        if refused is not None:
            if self._port is None:
                raise refused  # the first start: nothing serves yet, say why at once
            self._failed_starts[index] += 1
            log.error("replacement worker could not start", extra={"fields": {
                **fields, "error": str(refused), "attempt": self._failed_starts[index]}})
            if self._failed_starts[index] >= MAX_FAILED_STARTS:
                raise type(refused)(f"worker {index} could not be replaced: {refused}")
        elif ready_at is not None:
            ran = time.monotonic() - ready_at
            fields["ran_s"] = round(ran, 1)
            if ran >= HEALTHY_AFTER:
                self._backoffs[index].reset()
        wait = self._backoffs[index].next()
        self._respawn_at[index] = time.monotonic() + wait
        if refused is None:
            log.error("worker exited; replacing it" if ready_at is not None
                      else "worker died while starting; replacing it",
                      extra={"fields": {**fields, "replaced_in_s": round(wait, 1)}})
        count_worker_restart("signal" if exit_code < 0 else "exit")


@contextlib.contextmanager
def _blocked(sig: signal.Signals) -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _forget_metrics(pid: int) -> None:
    """With several workers, drop a dead worker's live gauges from the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
