"""Several worker processes under one parent: started, watched, replaced, and
never outliving it.

- Each worker runs the whole service (its own pool, LISTEN connection and gRPC
  server on the shared port) and says "ready" with its port, or why it could
  not start.
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
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from ..config import Settings
from ..core.backoff import Backoff
from ..errors import ConfigError
from .worker import log_listening, worker

log = logging.getLogger("authsvc")

MAX_FAILED_STARTS = 5
STARTUP_TIMEOUT = 60.0
HEALTHY_AFTER = 60.0  # a worker that ran this long resets the backoff
_PR_SET_PDEATHSIG = 1


class Supervisor:
    def __init__(self, settings: Settings, url: str) -> None:
        self._settings = settings
        self._url = url
        self._ctx = multiprocessing.get_context("spawn")
        self._ready: Any = self._ctx.Queue()
        self._workers: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._reports: dict[int, int | str] = {}  # worker → its port, or why it failed
        self._stopping = threading.Event()

    def run(self) -> int:
        """Start the workers and supervise them until a signal; the listening port."""
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self._settings.workers):
                self._start(index)
            ports = {self._await_ready(index) for index in range(self._settings.workers)}
            port = ports.pop()
            log_listening(self._settings.listen, port, len(self._workers))
            self._supervise()
            return port
        finally:
            self._stop(signal.SIGTERM, None)
            for process in self._workers.values():
                process.join(timeout=self._settings.shutdown_grace + 20)
                _forget_metrics(process)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping.set()
        for process in self._workers.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def _start(self, index: int) -> None:
        self._reports.pop(index, None)
        process = self._ctx.Process(
            target=worker_main,
            args=(self._settings, self._url, self._ready, index, os.getpid()),
            name=f"authsvc-worker-{index}")
        # The child inherits a blocked SIGINT: ^C at the terminal reaches the whole
        # process group, and only the parent should act on it (by SIGTERM to each
        # worker), not a worker still importing, with a traceback.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self._workers[index] = process
        self._started_at[index] = time.monotonic()

    def _await_ready(self, index: int) -> int:
        """Wait for worker ``index`` to report; its port, or ConfigError why not."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and not self._stopping.is_set():
            report = self._reports.pop(index, None)
            if isinstance(report, str):
                raise ConfigError(report)
            if report is not None:
                return report
            try:
                who, what = self._ready.get(timeout=0.2)
            except queue.Empty:
                if not self._workers[index].is_alive() and not self._stopping.is_set():
                    raise ConfigError(f"worker {index} exited while starting") from None
                continue
            self._reports[who] = what  # workers report in any order
        if self._stopping.is_set():
            raise KeyboardInterrupt  # a signal while starting: stop quietly
        raise ConfigError(f"worker {index} did not start within {STARTUP_TIMEOUT:.0f} s")

    def _supervise(self) -> None:
        backoff, failed_starts = Backoff(initial=0.5, maximum=10.0), 0
        while not self._stopping.is_set():
            by_sentinel: dict[Any, int] = {w.sentinel: i for i, w in self._workers.items()}
            for sentinel in wait(list(by_sentinel)):
                if self._stopping.is_set():
                    return
                index = by_sentinel[sentinel]
                dead = self._workers[index]
                dead.join()
                _forget_metrics(dead)
                ran = time.monotonic() - self._started_at[index]
                log.error("worker exited; replacing it", extra={"fields": {
                    "worker": index, "pid": dead.pid, "exit_code": dead.exitcode,
                    "ran_s": round(ran, 1)}})
                if ran >= HEALTHY_AFTER:
                    backoff.reset()
                while not self._stopping.is_set():
                    if self._stopping.wait(backoff.next()):
                        return
                    self._start(index)
                    try:
                        self._await_ready(index)
                    except ConfigError as exc:
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


def _forget_metrics(worker: BaseProcess) -> None:
    """With several workers, drop a dead worker's live gauges from the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and worker.pid is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the parent (pid ``parent``) dies; if it already
    has (we were re-parented before prctl took effect), stop now. The parent may
    well be pid 1 itself, as the supervisor is in a container."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def worker_main(settings: Settings, url: str, ready: Any, index: int, parent: int) -> None:
    """A worker process: serve until SIGTERM, reporting readiness to the parent."""
    import asyncio

    from .logs import configure

    configure()
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns ^C into SIGTERM
    try:
        asyncio.run(worker(settings, url, lambda port: ready.put((index, port))))
    except Exception as exc:
        ready.put((index, f"worker {index} failed to start: {type(exc).__name__}: {exc}"))
