"""Prometheus metrics on ``AUTHSVC_METRICS_LISTEN``, summed over the workers.

Only ``/metrics`` answers (404 elsewhere). With several workers each writes its
samples to files in a private directory (prometheus-client's multiprocess
mode, chosen by the variable ``workers_metrics_directory`` sets before the
workers start) and this process adds them up; its own process metrics (``process_*``) are the
supervisor's, and ``authsvc_workers_resident_memory_bytes`` sums the workers'.
With one worker, ``process_*`` are that worker's.

The supervisor counts the workers it replaces in
``authsvc_worker_restarts_total{cause}`` (``cause`` ``signal``: killed by one,
e.g. SIGKILL or the OOM killer; ``exit``: exited, or could not start); the counter
is written to the same directory, so it is summed with the workers' samples.
prometheus-client is imported only when metrics are on, so the supervisor stays
small otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..config import Settings, parse_listen
from ..errors import ConfigError
from .logs import where

log = logging.getLogger("authsvc")


@contextlib.contextmanager
def workers_metrics_directory(settings: Settings) -> Iterator[None]:
    """With several workers and metrics on: the private directory their samples go
    to, named in ``PROMETHEUS_MULTIPROC_DIR`` before they start (prometheus-client
    reads it when a worker imports it), removed at the end."""
    if settings.metrics_listen is None or settings.workers == 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="authsvc-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(directory, ignore_errors=True)


_restarts: Any = None  # the Counter, once metrics are on in a supervisor
RESTART_CAUSES = ("signal", "exit")


def declare_worker_restarts() -> None:
    """Create ``authsvc_worker_restarts_total`` (each cause at 0, so a rate of it
    means something from the start) if several workers' metrics are served."""
    global _restarts
    if _restarts is not None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import Counter

    _restarts = Counter("authsvc_worker_restarts", "Worker processes the supervisor "
                        "replaced, by cause of death", ["cause"])
    for cause in RESTART_CAUSES:
        _restarts.labels(cause=cause)


def count_worker_restart(cause: str) -> None:
    """One more worker replaced (``cause``: one of ``RESTART_CAUSES``)."""
    declare_worker_restarts()
    if _restarts is not None:
        _restarts.labels(cause=cause).inc()


@contextlib.contextmanager
def serving_metrics(settings: Settings) -> Iterator[None]:
    if settings.metrics_listen is None:
        yield
        return
    from wsgiref.simple_server import make_server  # only now: it loads http and ssl

    import prometheus_client
    from prometheus_client import multiprocess
    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

    host, port = parse_listen(settings.metrics_listen)
    registry = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # workers_metrics_directory
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        prometheus_client.ProcessCollector(registry=registry)
    try:
        server = make_server(host, port, _only_metrics(prometheus_client.make_wsgi_app(registry)),
                             ThreadingWSGIServer, handler_class=_SilentHandler)
    except OSError as exc:
        raise ConfigError(f"AUTHSVC_METRICS_LISTEN: cannot listen on "
                          f"{settings.metrics_listen}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s/metrics",
             where(settings.metrics_listen, server.server_address[1]))
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _only_metrics(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``app`` on /metrics; 404 on every other path."""
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not found: metrics are at /metrics\n"]
        return app(environ, start_response)
    return serve
