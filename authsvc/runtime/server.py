"""One worker's gRPC server: the Auth service, health checking and reflection.

TLS when AUTHSVC_TLS_CERT_FILE and AUTHSVC_TLS_KEY_FILE are set, mutual TLS
with AUTHSVC_TLS_CLIENT_CA_FILE. Limits (a decision; see README): requests up
to 64 KiB, metadata soft limit 8 KiB and hard limit 16 KiB, 1,000 concurrent
streams per connection, keepalive pings from clients no more often than every
10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..config import Settings
from ..errors import ConfigError, Unavailable
from ..transport.account import AccountMethods
from ..transport.admin import USER_ADMIN_SERVICE, UserAdminServicer
from ..transport.calls import CallInterceptor
from ..transport.convert import Callers
from ..transport.door import Door
from ..transport.federation import FederationMethods
from ..transport.feed import FeedAccess, per_worker_share
from ..transport.health import HealthServicer
from ..transport.metadata import networks
from ..transport.servicer import auth_servicer
from ..transport.sign_in import SignInMethods
from ..transport.token_services import TokenServiceMethods
from ..v1 import auth_pb2, auth_pb2_grpc, user_admin_pb2_grpc
from .app import App

log = logging.getLogger(__name__)

HEALTH_INTERVAL = 2.0
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024),
    ("grpc.max_send_message_length", 1024 * 1024),
    ("grpc.max_metadata_size", 8 * 1024),
    ("grpc.absolute_max_metadata_size", 16 * 1024),
    ("grpc.max_concurrent_streams", 1000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 1),
]
AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["Auth"].full_name


@contextlib.asynccontextmanager
async def running_server(app: App, listen: str) -> AsyncIterator[tuple[grpc.aio.Server, int]]:
    """A started server bound to ``listen`` (port 0 picks one); yields it and its port."""
    calls = CallInterceptor()
    mutual_tls = app.settings.tls_client_ca_file is not None
    door = Door(app.validator, app.factors.enrolled, app.clock,
                step_up_max_age=app.settings.step_up_max_age, mutual_tls=mutual_tls)
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[calls, door])
    callers = Callers(networks(app.settings.trusted_proxies))
    feed = FeedAccess(per_peer=per_worker_share(app.settings.watch_streams_per_peer,
                                                app.settings.workers))
    auth = auth_servicer(
        SignInMethods(app.sign_in, app.refresh, app.second_factor, app.passkeys,
                      app.self_service, callers),
        AccountMethods(app.self_service, app.factors, app.passkeys, callers),
        TokenServiceMethods(app.validator, app.sign_out, app.refresh,
                            lambda: app.keystore.ring, app.revocations, feed, app.clock,
                            callers, app.token_rules),
        FederationMethods(app.federation, callers))
    auth_pb2_grpc.add_AuthServicer_to_server(auth, server)
    user_admin = UserAdminServicer(app.accounts, app.factors, app.user_import)
    user_admin_pb2_grpc.add_UserAdminServicer_to_server(user_admin, server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if app.settings.reflection:
        reflection.enable_server_reflection(
            (AUTH_SERVICE, USER_ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server)
    credentials = server_credentials(app.settings)
    if credentials is None:
        port = server.add_insecure_port(listen)
    else:
        port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    watcher = asyncio.create_task(_report_health(app, health_servicer), name="health")
    try:
        yield server, port
    finally:
        # Shutdown, in order: refuse new calls with UNAVAILABLE, tell health
        # watchers NOT_SERVING, end revocation feeds (their clients reconnect
        # elsewhere), let calls in flight finish within the grace, then stop.
        calls.drain()
        log.info("shutting down")
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await health_servicer.drain()
        app.revocations.close_watches()
        started = time.monotonic()
        await calls.idle(app.settings.shutdown_grace)
        await server.stop(grace=max(0.0, app.settings.shutdown_grace
                                    - (time.monotonic() - started)))


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from the cert and key files; with a client CA, mutual TLS (clients must
    present a certificate it signed). None: plaintext, for loopback and tests."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    try:
        chain = settings.tls_cert_file.read_bytes()
        key = settings.tls_key_file.read_bytes()
        ca = (settings.tls_client_ca_file.read_bytes()
              if settings.tls_client_ca_file is not None else None)
    except OSError as exc:
        raise ConfigError(f"AUTHSVC_TLS_*: cannot read {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=ca,
                                       require_client_auth=ca is not None)


async def _report_health(app: App, servicer: HealthServicer) -> None:
    """SERVING while the database answers and a signing key is loaded. The revocation
    listener pings the database on its own connection every few seconds: while one of
    its pings was answered since the last check, that answer counts, and the check
    costs the database nothing; otherwise the check asks the database itself."""
    while True:
        try:
            if not app.listener.answered_within(HEALTH_INTERVAL + app.listener.ping_interval):
                await app.db.ping()
            ok = app.keystore.ring.signer(app.clock()) is not None
        except Unavailable:
            ok = False
        status = (health_pb2.HealthCheckResponse.SERVING if ok
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        await _set_health(servicer, status)
        await asyncio.sleep(HEALTH_INTERVAL)


async def _set_health(servicer: HealthServicer, status: int) -> None:
    for name in ("", AUTH_SERVICE):
        await servicer.set(name, status)
