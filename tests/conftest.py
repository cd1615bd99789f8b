"""Fixtures: a real PostgreSQL, a fresh database per test, a real gRPC server.

- ``pg_admin_url`` (session): a PostgreSQL server. ``AUTHSVC_TEST_DATABASE_URL``
  if set, else an embedded one started from the pgserver wheel in a temp dir.
- ``database_url`` (function): a fresh database cloned from a migrated
  template (``CREATE DATABASE … TEMPLATE``), dropped after the test.
- ``clock``: a FakeClock starting at the real time; tests move it instead of
  sleeping.
- ``settings``: test settings (cheap argon2, random encryption key).
- ``app`` / ``server`` / ``stub``: one authsvc worker in this event loop,
  listening on port 0, called through a real channel with generated stubs.
- ``oidc_provider``, ``second_oidc_provider``, ``github_provider``,
  ``rogue_provider``, ``silent_provider``: real identity providers for the
  federation tests (tests/providers/fixtures.py says what each is).
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from authsvc.clock import FakeClock
from authsvc.config import Secret, Settings
from authsvc.runtime.app import App, running_app
from authsvc.runtime.server import running_server
from authsvc.store.database import migrate
from authsvc.v1 import auth_pb2_grpc

from .helpers import PASSWORD
from .providers.fixtures import (  # noqa: F401 (fixtures: the test identity providers)
    github_provider,
    oidc_provider,
    rogue_provider,
    second_oidc_provider,
    silent_provider,
)
from .receivers import Mailbox, WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Each run gets a base temp folder of its own: pytest makes the shared
    /tmp/pytest-of-<user> private again at every start, which shuts another run's
    embedded PostgreSQL (its own system user, when run as root) out of its data
    directory. Two test runs on one machine, as CI may do, must not meet there."""
    if config.option.basetemp is None:
        base = tempfile.mkdtemp(prefix="authsvc-pytest-")
        config.option.basetemp = base
        config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL server to create test databases on."""
    external = os.environ.get("AUTHSVC_TEST_DATABASE_URL")
    if external:
        yield external
        return
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="authsvc-pg-", dir="/tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        server.psql("ALTER SYSTEM SET max_connections = 300;")
        yield f"postgresql://postgres@/postgres?host={server.get_postmaster_info().socket_dir}"
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def template_name(pg_admin_url: str) -> Iterator[str]:
    """A database with every migration applied, to clone per test."""
    name = f"authsvc_template_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        conn = await asyncpg.connect(with_database(pg_admin_url, name))
        await migrate(conn)
        await conn.close()

    asyncio.run(create())
    yield name
    asyncio.run(_drop(pg_admin_url, name))


async def _drop(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class _Databases:
    """Fresh databases cloned from the template ahead of need, and dropped after use,
    by a thread of its own: each RPC test gets a database at once instead of
    waiting ~0.3 s for CREATE DATABASE, and its DROP overlaps the next tests."""

    READY = 3

    def __init__(self, admin_url: str, template: str) -> None:
        self._admin_url = admin_url
        self._template = template
        self._ready: queue.Queue[str] = queue.Queue()
        self._work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="test-databases", daemon=True)
        self._thread.start()
        for _ in range(self.READY):
            self._work.put(("create", ""))

    def take(self) -> str:
        self._work.put(("create", ""))  # keep READY ahead
        return self._ready.get(timeout=120)

    def discard(self, name: str) -> None:
        self._work.put(("drop", name))

    def close(self) -> None:
        self._work.put(None)
        self._thread.join(timeout=120)
        while not self._ready.empty():
            asyncio.run(_drop(self._admin_url, self._ready.get()))

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        admin = await asyncpg.connect(self._admin_url)
        try:
            while (job := await asyncio.to_thread(self._work.get)) is not None:
                what, name = job
                if what == "create":
                    name = f"authsvc_test_{uuid.uuid4().hex[:12]}"
                    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
                    self._ready.put(name)
                else:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def databases(pg_admin_url: str, template_name: str) -> Iterator[_Databases]:
    pool = _Databases(pg_admin_url, template_name)
    yield pool
    pool.close()


@pytest.fixture
async def database_url(pg_admin_url: str, databases: _Databases) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone (cloned ahead of time)."""
    name = await asyncio.to_thread(databases.take)
    yield with_database(pg_admin_url, name)
    databases.discard(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=float(int(time.time())))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=Secret(database_url),
        key_encryption_key=Secret(os.urandom(32)),
        argon2_profile="test-only-cheapest",
        hash_threads=2,
        workers=1,
        listen="127.0.0.1:0",
        db_pool_size=20,
        # Pruning and the rest of housekeeping run every second under every test, so
        # the revocation and refresh tests show pruning never takes what still matters.
        housekeeping_interval=1.0,
    )


@pytest.fixture
async def app(settings: Settings, database_url: str, clock: FakeClock) -> AsyncIterator[App]:
    async with running_app(settings, database_url, clock) as app:
        yield app


@pytest.fixture
async def server(app: App) -> AsyncIterator[int]:
    """The port of an authsvc server running ``app``."""
    async with running_server(app, "127.0.0.1:0") as (_server, port):
        yield port


@pytest.fixture
async def channel(server: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthStub:
    return auth_pb2_grpc.AuthStub(channel)


@pytest.fixture
async def user(app: App) -> str:
    """The id of alice@example.com, password helpers.PASSWORD."""
    return await app.accounts.add("email", "alice@example.com", PASSWORD)


WATCHER = "watcher@example.com"


async def watch_token(app: App) -> str:
    """An access token of a service account allowed to follow WatchRevocations (scope
    authsvc.revocations), as a LocalVerifier's ``access_token`` returns it."""
    from authsvc.domain.caller import Caller
    from authsvc.transport.door import WATCH_SCOPE

    await app.accounts.add("email", WATCHER, PASSWORD, (WATCH_SCOPE,))
    signed_in = await app.sign_in.sign_in("email", WATCHER, PASSWORD, Caller())
    return signed_in.tokens.access_token


@pytest.fixture
async def watcher(app: App) -> str:
    """``watch_token`` of the app under test."""
    return await watch_token(app)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives."""
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP receiver of signed webhooks on 127.0.0.1."""
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()
