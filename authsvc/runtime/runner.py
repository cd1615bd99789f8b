"""Start-up and shutdown of ``authsvc serve``, with one or several workers.

Order, with several workers: spawn them (they import the service meanwhile) →
resolve the database (start the embedded one if no URL is set) → hand each
worker its settings; each checks its clock against the database's and
migrates (``startup.check_and_migrate``, safe on replicas), then its app makes
sure a signing key exists and it opens its own pool, LISTEN connection and
gRPC server on the shared port (SO_REUSEPORT) → log "listening on HOST:PORT"
once all are ready. This process imports none of the service: it only
supervises (and holds the embedded PostgreSQL and the metrics endpoint), so
it stays small. With one worker, all of it runs in this process. On SIGTERM
or SIGINT: each worker reports NOT_SERVING, stops accepting, lets in-flight
calls finish within the grace period, closes its listener and pool; then the
parent stops the embedded database if it started it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import socket
from collections.abc import Iterator

from ..config import Settings, parse_listen
from ..errors import ConfigError
from .embedded import EmbeddedPostgres, key_encryption_key
from .metrics import serving_metrics, workers_metrics_directory
from .supervisor import Supervisor

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
    try:
        url = embedded.start()
        kek = settings.key_encryption_key or key_encryption_key(settings.data_dir)
        yield dataclasses.replace(settings, key_encryption_key=kek), url
    finally:
        embedded.stop()


def serve(settings: Settings) -> None:
    _, port = parse_listen(settings.listen)
    if port == 0 and settings.workers > 1:
        raise ConfigError("AUTHSVC_LISTEN needs a fixed port when AUTHSVC_WORKERS > 1")
    refuse_shared_port(settings.listen)
    refuse_taken_metrics_port(settings.metrics_listen)
    if settings.workers == 1:
        with database(settings) as (settings, url), serving_metrics(settings):
            import asyncio

            from .worker import worker

            asyncio.run(worker(settings, url, None))
    else:
        # The workers import the service while the embedded database starts.
        with workers_metrics_directory(settings), Supervisor(settings) as supervisor:
            supervisor.spawn()
            with database(settings) as (settings, url), serving_metrics(settings):
                supervisor.run(settings, url)
    log.info("stopped")


def refuse_shared_port(listen: str) -> None:
    """Refuse to start where anything already listens.

    The workers of one server share its port with SO_REUSEPORT, and the kernel
    would just as gladly let a second, unrelated authsvc (same user, another
    database) join in and split the connections. A probe bound *without*
    SO_REUSEPORT fails while anything listens there, so the second server stops
    instead. (SO_REUSEADDR only forgives connections left in TIME_WAIT.)"""
    _refuse_taken("AUTHSVC_LISTEN", listen, "stop it or choose another port")


def refuse_taken_metrics_port(listen: str | None) -> None:
    """Refuse to start when the metrics port is taken, before anything starts,
    with the same kind of hint as for the gRPC port: a second local instance
    on another gRPC port meets the first one's metrics port (the default
    127.0.0.1:9464) here. The bind itself (``metrics.serving_metrics``) comes
    after the database and the workers; this probe spares them a start that
    would fail."""
    if listen is not None:
        _refuse_taken("AUTHSVC_METRICS_LISTEN", listen,
                      "stop it, choose another port, or set AUTHSVC_METRICS_LISTEN=off")


def _refuse_taken(variable: str, listen: str, remedy: str) -> None:
    """ConfigError (exit status 2) naming ``variable`` when something listens on
    ``listen`` (port 0 is never taken)."""
    host, port = parse_listen(listen)
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ConfigError(f"{variable}: cannot listen on {listen}: {reason} (another "
                              f"process listens there; {remedy})") from None
