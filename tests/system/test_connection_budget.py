"""A database with few connection slots: the revocation listener always gets its
connection back, a pool asks a full server for connections rarely (not once per
call), a replica started on a full server says "too many connections" with the
budget's arithmetic, and one that may not fit is warned about once.

They run on a PostgreSQL of their own (the pgserver wheel's binaries, as the
failover tests do) with ``max_connections`` 12, 3 of them reserved for
superusers; authsvc connects as an ordinary role, ``authsvc``, so it has 9. The
tests' own administrative connections are the superuser's and use the reserved
slots, so they always get in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from authsvc.clock import FakeClock
from authsvc.config import Secret, Settings
from authsvc.errors import Unavailable
from authsvc.runtime.app import running_app
from authsvc.store.database import REVOCATION_CHANNEL, Database, create_pool, migrate
from authsvc.store.listener import APPLICATION_NAME

from ..helpers import eventually
from ..servers import AuthsvcProcess, free_port, new_key, server_env
from .replication import Node, init_template, make_root

MAX_CONNECTIONS = 12
SUPERUSER_RESERVED = 3
AVAILABLE = MAX_CONNECTIONS - SUPERUSER_RESERVED  # to the authsvc role
FILLER = "budget-test-filler"
KEK = new_key()  # one for the module: its tests share one database and its signing key


@dataclass
class SmallServer:
    node: Node

    @property
    def url(self) -> str:
        """authsvc's URL: the ordinary role."""
        return f"postgresql://authsvc@{self.node.address}/authsvc"

    @property
    def admin_url(self) -> str:
        return self.node.url("authsvc")

    def refusals(self) -> int:
        """Connection attempts the server has refused for lack of slots so far."""
        log = (self.node.pgdata / "log").read_text()
        return (log.count("too many clients already")
                + log.count("remaining connection slots are reserved"))


@pytest.fixture(scope="module")
def small() -> Iterator[SmallServer]:
    root = make_root("authsvc-budget-")
    node: Node | None = None
    try:
        pgdata = init_template(root, fsync=False)
        with (pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"max_connections = {MAX_CONNECTIONS}\n"
                       f"superuser_reserved_connections = {SUPERUSER_RESERVED}\n"
                       "reserved_connections = 0\n")
        node = Node("small", pgdata, free_port(), root)
        node.start()
        asyncio.run(_prepare(node.url("authsvc")))
        yield SmallServer(node)
    finally:
        if node is not None:
            node.kill()
        shutil.rmtree(root, ignore_errors=True)


async def _prepare(admin_url: str) -> None:
    """The ordinary role ``authsvc``, owner of the database, and its schema migrated."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute("CREATE ROLE authsvc LOGIN")
        await admin.execute("ALTER DATABASE authsvc OWNER TO authsvc")
        await admin.execute("ALTER SCHEMA public OWNER TO authsvc")
    finally:
        await admin.close()
    conn = await asyncpg.connect(admin_url.replace("postgres@", "authsvc@"))
    try:
        await migrate(conn)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def occupied(small: SmallServer) -> AsyncIterator[list[asyncpg.Connection]]:
    """Every slot the authsvc role may still use, held (as other replicas' pools
    would hold them); more can be added to the list. Closed at the end."""
    held: list[asyncpg.Connection] = []
    try:
        await take_free_slots(small, held)
        yield held
    finally:
        for conn in held:
            conn.terminate()


async def take_free_slots(small: SmallServer, held: list[asyncpg.Connection]) -> None:
    """Connect as authsvc until the server refuses (too many connections)."""
    while True:
        try:
            held.append(await asyncpg.connect(small.url, server_settings={
                "application_name": FILLER}))
        except asyncpg.exceptions.TooManyConnectionsError:
            return


async def grab_a_slot_when_freed(small: SmallServer, held: list[asyncpg.Connection],
                                 stop: asyncio.Event) -> None:
    """What the pools of a fleet over budget do: ask again and again, and take the
    first slot that comes free."""
    while not stop.is_set():
        try:
            held.append(await asyncpg.connect(small.url, server_settings={
                "application_name": FILLER}))
            return
        except asyncpg.exceptions.TooManyConnectionsError:
            await asyncio.sleep(0)


async def backend_pids(admin: asyncpg.Connection, application_name: str) -> list[int]:
    return [r["pid"] for r in await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND usename = 'authsvc'",
        application_name)]


def small_settings(small: SmallServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": Secret(small.url),
        "key_encryption_key": Secret(base64.urlsafe_b64decode(KEK)),
        "argon2_profile": "test-only-cheapest", "hash_threads": 1, "workers": 1,
        "listen": "127.0.0.1:0", "db_pool_size": 2, "db_timeout": 2.0,
        "housekeeping_interval": 3600.0}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_the_listener_gets_its_connection_back_when_the_fleet_takes_every_free_slot(
        small):
    """Every slot is held; the listener's connection is cut, and the freed slot is
    taken at once by a competitor asking as fast as it can: the listener is back
    within seconds all the same, and hears revocations notified after that."""
    settings = small_settings(small)
    async with running_app(settings, small.url, FakeClock(start=time.time())) as app, \
            occupied(small) as held:
        admin = await asyncpg.connect(small.admin_url)
        stop = asyncio.Event()
        try:
            (listening,) = await backend_pids(admin, APPLICATION_NAME)
            competitor = asyncio.create_task(grab_a_slot_when_freed(small, held, stop))
            await admin.execute("SELECT pg_terminate_backend($1)", listening)

            async def listening_again() -> bool:
                return bool(set(await backend_pids(admin, APPLICATION_NAME)) - {listening})

            await eventually(listening_again, 10, "a new LISTEN connection")
            session_id = str(uuid.uuid4())

            async def heard() -> bool:
                """Notified again at each look: the new connection is named before
                its LISTEN commits, and a NOTIFY committed in between is not for it."""
                await admin.execute("SELECT pg_notify($1, $2)", REVOCATION_CHANNEL, session_id)
                return app.revocations.is_revoked(session_id) is True

            await eventually(heard, 5, "the revocation")
            with pytest.raises(asyncpg.exceptions.TooManyConnectionsError):
                await asyncpg.connect(small.url)  # still full: no slot was left to it
        finally:
            stop.set()
            await admin.close()
        await competitor


async def test_a_pool_asks_a_full_server_for_connections_rarely_and_recovers(small):
    """With every slot taken, two seconds of calls (each UNAVAILABLE) make the pool
    ask PostgreSQL a handful of times, not once per call; once slots are free
    again, calls succeed within the backoff's longest wait."""
    pool = await create_pool(small.url, 2, 2.0)
    db = Database(pool, 2.0)
    try:
        admin = await asyncpg.connect(small.admin_url)
        try:
            async with occupied(small) as held:

                async def pool_gone() -> bool:
                    """Cut the pool's connections and take the slots they free,
                    until the pool has none (it reconnects to keep its minimum)."""
                    for pid in await backend_pids(admin, "authsvc"):
                        await admin.execute("SELECT pg_terminate_backend($1)", pid)
                    await take_free_slots(small, held)
                    return not await backend_pids(admin, "authsvc")

                async def measured() -> tuple[int, int] | None:
                    """(refused attempts, calls) over two seconds of calls on a full
                    server; None when the pool got a slot after all (a terminated
                    backend frees its slot only once it has exited, which can come
                    after the fillers looked), and the measurement starts again."""
                    await eventually(pool_gone, 10, "the pool's connections to end")
                    refused_before, calls = small.refusals(), 0
                    deadline = time.monotonic() + 2.0
                    while time.monotonic() < deadline:
                        try:
                            await db.ping()
                        except Unavailable:
                            calls += 1
                            await asyncio.sleep(0.001)  # a steady stream of calls
                            continue
                        return None
                    return small.refusals() - refused_before, calls

                found = None
                for _ in range(5):
                    found = await measured()
                    if found is not None:
                        break
                assert found is not None, "the pool kept finding a free slot"
                refused, calls = found
        finally:
            await admin.close()

        async def answers() -> bool:
            try:
                await db.ping()
            except Unavailable:
                return False
            return True

        await eventually(answers, 15, "the pool to connect again")
    finally:
        await db.close()

    assert calls >= 100
    assert 1 <= refused <= 8, f"{refused} refused attempts for {calls} calls"


def test_a_replica_started_on_a_full_server_says_too_many_connections(small):
    """Every slot taken: ``authsvc serve`` exits 3 with one line saying PostgreSQL has
    no connection slot left (SQLSTATE 53300), with this replica's arithmetic, not
    "cannot reach"."""
    async def run() -> subprocess.CompletedProcess[str]:
        async with occupied(small):
            return await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "authsvc", "serve", "--listen",
                 f"127.0.0.1:{free_port()}", "--workers", "2"],
                env=server_env(AUTHSVC_DATABASE_URL=small.url,
                               AUTHSVC_KEY_ENCRYPTION_KEY=KEK,
                               AUTHSVC_DB_POOL_SIZE="4"),
                capture_output=True, text=True, timeout=120, check=False)

    result = asyncio.run(run())

    assert result.returncode == 3, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("authsvc: error:")]
    assert error == [
        f"authsvc: error: AUTHSVC_DATABASE_URL: PostgreSQL at {small.node.address}, database "
        "authsvc has no connection slot left (too many connections, SQLSTATE 53300): each "
        "replica holds up to AUTHSVC_WORKERS x (AUTHSVC_DB_POOL_SIZE + 1 for the revocation "
        "listener) = 2 x (4 + 1) = 10 connections, and every replica's must fit in "
        "max_connections minus superuser_reserved_connections and reserved_connections; "
        "raise max_connections, or lower AUTHSVC_DB_POOL_SIZE or AUTHSVC_WORKERS, or run "
        "fewer replicas"]
    assert "cannot reach" not in result.stderr


@pytest.mark.parametrize(("workers", "pool", "others", "warning"), [
    (2, 4, 0, "this replica alone may need more connections than PostgreSQL allows "
              "(10 > max_connections 12 - reserved 3)"),
    (1, 3, AVAILABLE - 3, "PostgreSQL has 3 connection slots free and this replica may "
                          "need 4"),
    (1, 3, 0, None),
], ids=["over-the-limit", "over-what-is-free", "fits"])
async def test_a_replica_that_may_not_fit_is_warned_about_once(small, workers, pool, others,
                                                               warning):
    """At start-up one worker compares workers x (pool + 1) with the server's limit
    and with its free slots: one warning line when it does not fit (the replica
    serves all the same), none when it does."""
    held = [await asyncpg.connect(small.url, server_settings={"application_name": FILLER})
            for _ in range(others)]
    server = AuthsvcProcess(free_port(), server_env(
        AUTHSVC_DATABASE_URL=small.url, AUTHSVC_KEY_ENCRYPTION_KEY=KEK,
        AUTHSVC_DB_POOL_SIZE=str(pool)), ["--workers", str(workers)])
    try:
        await asyncio.to_thread(lambda: server.start().wait_ready())
    finally:
        await asyncio.to_thread(server.stop)
        for conn in held:
            conn.terminate()

    warnings = [line for line in server.log.splitlines() if "connection budget" in line]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1, server.log
        assert warning in warnings[0]
