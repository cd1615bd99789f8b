"""A worker process of ``authsvc serve --workers N``, started by the supervisor as
``python -m authsvc.runtime.child INDEX PARENT_PID REPORT_FD``. It imports the
service first, then reads its settings and the database URL, pickled, on stdin
(a pipe from the parent: secrets never reach the command line or the
environment); EOF there means the parent gave up before, and it exits 0.

It reports one JSON line on ``REPORT_FD``: ``{"port": N}`` once listening, or
``{"error": ..., "unreachable": bool}`` when it could not start (the message is
the one the single-process server would print; ``unreachable`` picks exit
status 3 over 2). Then it serves until SIGTERM.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pickle
import signal
import sys

from ..config import Settings
from ..errors import AuthsvcError, Unavailable

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    index, parent, report_fd = (int(arg) for arg in argv)
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns ^C into SIGTERM
    import asyncio  # the service, imported while the parent starts the database

    from .logs import configure
    from .worker import worker

    configure()
    try:
        # From the parent, through a pipe only it holds: trusted as the parent is.
        settings, url = pickle.load(sys.stdin.buffer)  # noqa: S301
    except EOFError:
        return 0  # the parent stopped before it could give any
    if not isinstance(settings, Settings) or not isinstance(url, str):
        raise TypeError("the parent sent something other than (Settings, database URL)")
    reports = os.fdopen(report_fd, "w")

    def report(what: dict[str, object]) -> None:
        """The one report: the parent reads one line, then only waits for the exit."""
        if not reports.closed:
            with reports:
                reports.write(json.dumps(what) + "\n")

    try:
        asyncio.run(worker(settings, url, lambda port: report({"port": port}),
                           first=index == 0))
    except AuthsvcError as exc:
        report({"error": str(exc), "unreachable": isinstance(exc, Unavailable)})
        return 3 if isinstance(exc, Unavailable) else 2
    except Exception as exc:
        report({"error": f"worker {index} failed to start: {type(exc).__name__}"})
        logging.getLogger("authsvc").error("worker failed", extra={"fields": {
            "worker": index, "error": type(exc).__name__}})
        return 1
    return 0


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
