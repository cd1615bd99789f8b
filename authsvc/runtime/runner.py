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
import errno
import logging
import socket
from collections.abc import Iterator

from ..clock import Clock, system_clock
from ..config import Settings, parse_listen
from ..domain.keystore import KeyStore
from ..errors import ConfigError
from ..store.database import (
    Connection,
    Database,
    clock_beyond,
    clock_offset,
    connect,
    create_pool,
    explained_connect_failures,
    migrate,
)
from .embedded import EmbeddedPostgres, key_encryption_key
from .metrics import serving_metrics
from .supervisor import Supervisor
from .worker import worker

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


async def prepare(settings: Settings, url: str) -> None:
    """Check this host's clock against the database's, migrate and make sure a signing
    key exists (safe on several replicas)."""
    conn = await connect(url, settings.db_timeout)
    try:
        await check_clock(conn, settings.clock_leeway)
        with explained_connect_failures(url):  # e.g. a URL that reaches a standby
            await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(url, 2, settings.db_timeout)
    try:
        await KeyStore(Database(pool, settings.db_timeout), settings,
                       system_clock).ensure_signing_key()
    finally:
        await pool.close()


async def check_clock(conn: Connection, leeway: float, clock: Clock = system_clock) -> None:
    """Refuse to start on a host whose clock is more than the leeway off the database's.

    Tokens are judged by replicas' clocks within the leeway, and a revoked session is
    remembered on the assumption that every replica is within it
    (``core.revocations.retention_window``): a replica further off would issue tokens
    others refuse, or accept a revoked session's token after its revocation is
    forgotten. Running workers keep measuring (``authsvc_clock_offset_seconds``)."""
    offset = await clock_offset(conn, clock)
    if clock_beyond(offset, leeway):
        raise ConfigError(
            f"this host's clock is {offset:+.1f} s off the database's, more than "
            f"AUTHSVC_CLOCK_LEEWAY ({leeway:g} s): fix its time synchronisation (NTP)")
    log.info("clock checked", extra={"fields": {"clock_offset_s": round(offset, 3)}})


def serve(settings: Settings) -> None:
    _, port = parse_listen(settings.listen)
    if port == 0 and settings.workers > 1:
        raise ConfigError("AUTHSVC_LISTEN needs a fixed port when AUTHSVC_WORKERS > 1")
    refuse_shared_port(settings.listen)
    with database(settings) as (settings, url), serving_metrics(settings):
        asyncio.run(prepare(settings, url))
        if settings.workers == 1:
            asyncio.run(worker(settings, url, None))
        else:
            Supervisor(settings, url).run()
    log.info("stopped")


def refuse_shared_port(listen: str) -> None:
    """Refuse to start where anything already listens.

    The workers of one server share its port with SO_REUSEPORT, and the kernel
    would just as gladly let a second, unrelated authsvc (same user, another
    database) join in and split the connections. A probe bound *without*
    SO_REUSEPORT fails while anything listens there, so the second server stops
    instead. (SO_REUSEADDR only forgives connections left in TIME_WAIT.)"""
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
            raise ConfigError(f"AUTHSVC_LISTEN: cannot listen on {listen}: {reason} (another "
                              "process listens there; stop it or choose another port)"
                              ) from None
