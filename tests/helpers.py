"""Helpers shared by every tier: asserting on gRPC status exactly, signing in, running
the ``authsvc`` command, and a database that refuses connections."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from google.rpc import error_details_pb2, status_pb2

from authsvc.v1 import auth_pb2

PASSWORD = "correct horse battery staple"
KEK = base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str | None
    fields: list[str]
    retry_delay: int | None
    trailers: dict[str, str]

    @property
    def challenge(self) -> str | None:
        return self.trailers.get("www-authenticate")


def parse(error: grpc.RpcError) -> Failure:
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    reason, fields, delay = None, [], None
    raw = trailers.pop("grpc-status-details-bin", None)
    if raw is not None:
        status = status_pb2.Status.FromString(raw)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                assert info.domain == "authsvc"
                reason = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields = [v.field for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info_r = error_details_pb2.RetryInfo()
                detail.Unpack(info_r)
                delay = info_r.retry_delay.seconds
    return Failure(error.code(), error.details(), reason, fields, delay,  # type: ignore[attr-defined]
                   {k: v for k, v in trailers.items() if isinstance(v, str)})


async def fails(call: Awaitable[Any]) -> Failure:
    """Await an RPC that must fail; return what it said."""
    try:
        result = await call
    except grpc.RpcError as error:
        return parse(error)
    raise AssertionError(f"expected an error, got {result!r}")


async def sign_in(stub: Any, email: str = "alice@example.com",
                  password: str = PASSWORD) -> auth_pb2.SignInResponse:
    response: auth_pb2.SignInResponse = await stub.SignIn(
        auth_pb2.SignInRequest(email=email, password=password))
    return response


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@contextlib.asynccontextmanager
async def database_refusing_connections(admin_url: str, database_url: str,
                                        ) -> AsyncIterator[None]:
    """While inside: the test database refuses new connections and has lost its
    existing ones, as when its server goes away. Restored on exit."""
    from urllib.parse import urlsplit

    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1", name)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


def authsvc(database_url: str, *args: str, stdin: str = "", env: dict | None = None):
    """Run ``python -m authsvc ARGS --database-url DATABASE_URL`` with cheap argon2 and
    the suite's encryption key; return the finished process (never raises on failure)."""
    environment = {**os.environ, "AUTHSVC_KEY_ENCRYPTION_KEY": KEK,
                   "AUTHSVC_ARGON2_PROFILE": "test-only-cheapest", **(env or {})}
    return subprocess.run([sys.executable, "-m", "authsvc", *args, "--database-url",
                           database_url], input=stdin, capture_output=True, text=True,
                          env=environment, timeout=60, check=False)


async def travel(database_url: str, seconds: float, *clocks: Any) -> None:
    """Let ``seconds`` pass: each injected clock given moves on, and so does the
    database's clock as far as authsvc can tell, by moving every time stored in the
    database back by as much. (authsvc judges stored times by the database's
    ``now()``, which a test cannot set.) Signing keys keep their times: they pair
    with token times, which replicas' clocks judge."""
    for clock in clocks:
        clock.advance(seconds)
    conn = await asyncpg.connect(database_url)
    try:
        columns: dict[str, list[str]] = {}
        for row in await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND data_type = 'timestamp with time zone'"
                "   AND table_name NOT IN ('signing_keys', 'schema_migrations')"):
            columns.setdefault(row["table_name"], []).append(row["column_name"])
        async with conn.transaction():
            for table, names in sorted(columns.items()):
                moved = ", ".join(f"{name} = {name} - make_interval(secs => $1)"
                                  for name in names)
                await conn.execute(f"UPDATE {table} SET {moved}",  # noqa: S608 (catalog names)
                                   float(seconds))
    finally:
        await conn.close()


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], timeout: float,
                     what: str | Callable[[], str], *, interval: float = 0.02) -> None:
    """Wait until ``predicate()`` (sync or async) holds; fail naming ``what`` after
    ``timeout`` seconds. The one way tests wait for another process or task.

    ``what`` may be a function, called only on failure, to say what was seen by then
    (a server's log, the rows so far). A predicate may raise to fail at once (a
    process that exited will never log the line waited for)."""
    deadline = time.monotonic() + timeout
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, _timed_out(timeout, what)
        await asyncio.sleep(interval)


def eventually_blocking(predicate: Callable[[], bool], timeout: float,
                        what: str | Callable[[], str], *, interval: float = 0.02) -> None:
    """``eventually`` for code that runs outside an event loop (synchronous tests,
    fixtures and threads): the same deadline, message and meaning of ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, _timed_out(timeout, what)
        time.sleep(interval)


def _timed_out(timeout: float, what: str | Callable[[], str]) -> str:
    return f"timed out after {timeout} s waiting for {what() if callable(what) else what}"
