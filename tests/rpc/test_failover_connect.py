"""Connecting with a multi-host URL: every host gets its own attempt and its own
connect timeout, so a host that accepts TCP and never answers (a frozen server)
cannot hide the next one, and attempts that lose are closed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from authsvc.clock import call_deadline
from authsvc.errors import ConfigError, DatabaseUnreachable, Unavailable
from authsvc.store.database import Database, connect, create_pool

from ..helpers import eventually
from ..servers import free_port

TIMEOUT = 2.0


class BlackHole:
    """A TCP port that accepts every connection and never says a word, the way a
    SIGSTOPped PostgreSQL looks to a client; it counts what is still open."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> BlackHole:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            with contextlib.suppress(ConnectionError):
                while await reader.read(4096):
                    pass
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def hole() -> AsyncIterator[BlackHole]:
    async with BlackHole() as hole:
        yield hole


async def _real_host(database_url: str) -> tuple[str, int, str]:
    """The test server's socket directory, port and this test's database."""
    parts = urlsplit(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        port = int(await conn.fetchval("SHOW port"))
    finally:
        await conn.close()
    socket_dir = dict(p.split("=", 1) for p in parts.query.split("&"))["host"]
    return socket_dir, port, parts.path.lstrip("/")


def _url(database: str, *hosts: tuple[str, int], attrs: str = "") -> str:
    names = ",".join(h for h, _ in hosts)
    ports = ",".join(str(p) for _, p in hosts)
    extra = f"&target_session_attrs={attrs}" if attrs else ""
    return f"postgresql://postgres@/{database}?host={names}&port={ports}{extra}"


async def test_a_host_that_never_answers_does_not_hide_the_next(database_url, hole):
    """With a silent first host, ``connect`` reaches the second within one connect
    timeout (asyncpg alone spends that whole timeout on the first host and fails),
    and the attempt on the silent host is closed."""
    socket_dir, port, name = await _real_host(database_url)
    url = _url(name, ("127.0.0.1", hole.port), (socket_dir, port), attrs="read-write")

    conn = await connect(url, TIMEOUT)
    try:
        reached = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()
    with pytest.raises(TimeoutError):
        await asyncpg.connect(url, timeout=TIMEOUT)

    assert reached == name
    assert hole.accepted == 2  # ours, then asyncpg's
    await eventually(lambda: hole.open == 0, 10, "the silent host's connections to close")


async def test_the_pool_opens_its_connections_past_a_silent_host(database_url, hole):
    """Every connection the pool opens skips the silent host on its own, so calls
    through ``Database`` succeed, several at once."""
    socket_dir, port, name = await _real_host(database_url)
    url = _url(name, ("127.0.0.1", hole.port), (socket_dir, port))
    pool = await create_pool(url, 3, TIMEOUT)
    database = Database(pool, TIMEOUT)
    try:
        async def which() -> str:
            async with database.connection() as conn:
                await asyncio.sleep(0)  # hold it, so the others need connections too
                return str(await conn.fetchval("SELECT current_database()"))

        reached = await asyncio.gather(*(which() for _ in range(3)))
    finally:
        await database.close()

    assert reached == [name] * 3
    await eventually(lambda: hole.open == 0, 10, "the silent host's connections to close")


async def test_when_no_host_answers_the_database_is_unreachable(hole):
    """Two silent hosts: each attempt ends at its own timeout, and the failure is
    DatabaseUnreachable ("nothing answers there"), with nothing left open."""
    other = BlackHole()
    async with other:
        url = _url("authsvc", ("127.0.0.1", hole.port), ("127.0.0.1", other.port))

        with pytest.raises(DatabaseUnreachable, match="nothing answers there"):
            await connect(url, TIMEOUT)

        assert (hole.accepted, other.accepted) == (1, 1)
        await eventually(lambda: hole.open == other.open == 0, 10, "attempts to close")


async def test_a_mistake_in_the_url_is_told_before_a_host_that_is_down(database_url):
    """One host refuses connections, the other has no such database: the answer is
    the mistake in the URL (ConfigError), not "cannot reach"."""
    socket_dir, port, _ = await _real_host(database_url)
    url = _url("no_such_database", ("127.0.0.1", free_port()), (socket_dir, port))

    with pytest.raises(ConfigError, match="no such database"):
        await connect(url, TIMEOUT)


async def test_a_healthy_first_host_is_the_one_chosen(database_url, hole):
    """Hosts are tried in the URL's order: with an answering first host, the
    connection is the first host's, whatever the later ones do."""
    socket_dir, port, name = await _real_host(database_url)
    url = _url(name, (socket_dir, port), ("127.0.0.1", hole.port))

    conn = await connect(url, TIMEOUT)
    try:
        reached = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()

    assert reached == name
    await eventually(lambda: hole.open == 0, 10, "any attempt on the second host to close")


async def _backends(database: Database, count: int) -> set[int]:
    """The server processes behind ``count`` pooled connections held at once."""
    held = asyncio.Event()
    pids: list[int] = []

    async def one() -> None:
        async with database.connection() as conn:
            pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
            if len(pids) == count:
                held.set()
            await held.wait()

    await asyncio.gather(*(one() for _ in range(count)))
    return set(pids)


async def test_a_call_the_database_left_unanswered_retires_every_pooled_connection(
        database_url):
    """A statement with no answer for all of the database timeout looks like a
    frozen or failed-over server: every pooled connection is replaced on its
    next use, not just the one that waited."""
    database = Database(await create_pool(database_url, 3, 1.0), 1.0)
    try:
        before = await _backends(database, 3)
        with pytest.raises(Unavailable):
            async with database.connection() as conn:
                await conn.execute("SELECT pg_sleep(10)")
        after = await _backends(database, 3)
    finally:
        await database.close()

    assert before.isdisjoint(after)


async def test_a_clients_own_short_deadline_retires_only_its_connection(database_url):
    """When the call's gRPC deadline, not the database timeout, cut the statement
    short, only that connection is closed; the others stay."""
    database = Database(await create_pool(database_url, 3, 30.0), 30.0)
    try:
        before = await _backends(database, 3)
        token = call_deadline.set(asyncio.get_running_loop().time() + 0.5)
        try:
            with pytest.raises(Unavailable):
                async with database.connection() as conn:
                    await conn.execute("SELECT pg_sleep(10)")
        finally:
            call_deadline.reset(token)
        after = await _backends(database, 3)
    finally:
        await database.close()

    assert len(before & after) == 2
