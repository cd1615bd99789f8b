"""Start-up and shutdown of ``authsvc serve``, with one or several workers.

Order: resolve the database (start the embedded one if no URL is set) →
migrate → make sure a signing key exists → start N workers, each with its own
pool, LISTEN connection and gRPC server on the shared port (SO_REUSEPORT) →
log "listening on HOST:PORT" once all are ready. On SIGTERM or SIGINT: each
worker reports NOT_SERVING, stops accepting, lets in-flight calls finish
within the grace period, closes its listener and pool; then the parent stops
the embedded database if it started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from multiprocessing.queues import Queue as MPQueue
from typing import Any

from ..clock import system_clock
from ..config import Settings, parse_listen
from ..domain.keystore import KeyStore
from ..errors import ConfigError
from ..store.database import Database, connect, create_pool, migrate
from .app import running_app
from .embedded import EmbeddedPostgres, key_encryption_key

log = logging.getLogger("authsvc")

KEY_HELP = (
    "AUTHSVC_KEY_ENCRYPTION_KEY must be set outside the embedded default (it encrypts "
    "signing keys at rest). Make one with: python3 -c \"import secrets, base64; "
    "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())\"")


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """The database URL to use, and settings completed with the encryption key.

    Starts the embedded PostgreSQL when no URL is configured, and lets go of
    it on exit (it stops once no other authsvc process uses it)."""
    if settings.database_url is not None:
        if settings.key_encryption_key is None:
            raise ConfigError(KEY_HELP)
        yield settings, settings.database_url.reveal()
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        kek = settings.key_encryption_key or key_encryption_key(settings.data_dir)
        yield dataclasses.replace(settings, key_encryption_key=kek), url
    finally:
        embedded.stop()


async def prepare(settings: Settings, url: str) -> None:
    """Migrate and make sure a signing key exists (safe on several replicas)."""
    conn = await connect(url, settings.db_timeout)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(url, 2, settings.db_timeout)
    try:
        await KeyStore(Database(pool, settings.db_timeout), settings,
                       system_clock).ensure_signing_key()
    finally:
        await pool.close()


def serve(settings: Settings) -> None:
    _, port = parse_listen(settings.listen)
    if port == 0 and settings.workers > 1:
        raise ConfigError("AUTHSVC_LISTEN needs a fixed port when AUTHSVC_WORKERS > 1")
    with database(settings) as (settings, url), _metrics(settings):
        asyncio.run(prepare(settings, url))
        if settings.workers == 1:
            asyncio.run(_worker(settings, url, None))
        else:
            _run_workers(settings, url)
    log.info("stopped")


@contextlib.contextmanager
def _metrics(settings: Settings) -> Iterator[None]:
    """Serve Prometheus metrics on AUTHSVC_METRICS_LISTEN from this process.

    With several workers, each writes its samples to files in a private
    directory (prometheus-client's multiprocess mode, chosen by the variable
    set here before the workers start) and this process adds them up."""
    if settings.metrics_listen is None:
        yield
        return
    import prometheus_client
    from prometheus_client import multiprocess

    host, port = parse_listen(settings.metrics_listen)
    directory = None
    registry = prometheus_client.REGISTRY
    if settings.workers > 1:
        directory = tempfile.mkdtemp(prefix="authsvc-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        server, thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"AUTHSVC_METRICS_LISTEN: cannot listen on "
                          f"{settings.metrics_listen}: {exc.strerror}") from None
    log.info("metrics on http://%s/metrics", _where(settings.metrics_listen, port))
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=5)
        if directory is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(directory, ignore_errors=True)


def _run_workers(settings: Settings, url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready: MPQueue[Any] = ctx.Queue()
    workers = [ctx.Process(target=_worker_main, args=(settings, url, ready, i),
                           name=f"authsvc-worker-{i}") for i in range(settings.workers)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        ports = set()
        for _ in workers:
            item = ready.get()
            if isinstance(item, str):  # a worker failed to start
                raise ConfigError(item)
            ports.add(item)
        log.info("listening on %s (%d workers)", _where(settings.listen, ports.pop()),
                 len(workers))
        for worker in workers:
            worker.join()
    finally:
        stop(signal.SIGTERM, None)
        for worker in workers:
            worker.join(timeout=settings.shutdown_grace + 20)
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and worker.pid is not None:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not stopping:
            log.error("a worker exited; stopping")


def _worker_main(settings: Settings, url: str, ready: MPQueue[Any], index: int) -> None:
    from .logs import configure

    configure()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns ^C into SIGTERM
    try:
        asyncio.run(_worker(settings, url, ready))
    except Exception as exc:
        ready.put(f"worker {index} failed to start: {type(exc).__name__}: {exc}")


async def _worker(settings: Settings, url: str, ready: MPQueue[Any] | None) -> None:
    from .server import running_server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_app(settings, url) as app, \
            running_server(app, settings.listen) as (_server, port):
        if ready is None:
            log.info("listening on %s", _where(settings.listen, port))
        else:
            ready.put(port)
        await stop.wait()


def _where(listen: str, port: int) -> str:
    host, _ = parse_listen(listen)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
