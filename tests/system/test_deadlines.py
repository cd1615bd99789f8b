"""A frozen database: every call ends UNAVAILABLE within one bound, the client's
deadline when that is sooner, never DEADLINE_EXCEEDED and never twice the bound."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest

from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails

DB_TIMEOUT = 1.0
SLACK = 1.5  # scheduling on a loaded machine; twice the bound would still fail


@contextlib.asynccontextmanager
async def frozen(admin_url: str, database_url: str) -> AsyncIterator[None]:
    """SIGSTOP every backend serving authsvc's pool on this database (the server itself
    and everyone else's connections stay up), and SIGCONT them afterwards."""
    admin = await asyncpg.connect(admin_url)
    pids = [r["pid"] for r in await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'authsvc'",
        urlsplit(database_url).path[1:])]
    await admin.close()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
async def quick(settings, database_url, clock):
    """authsvc with AUTHSVC_DB_TIMEOUT=1 and a pool of two connections, both in use
    before the freeze."""
    short = dataclasses.replace(settings, db_timeout=DB_TIMEOUT, db_pool_size=2)
    async with running_app(short, database_url, clock, listen_for_revocations=False) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        async with app.db.connection(), app.db.connection():
            pass  # both pooled connections exist
        yield auth_pb2_grpc.AuthStub(channel)


@pytest.mark.parametrize("client_deadline", [None, 30.0, 0.6],
                         ids=["no-deadline", "long-deadline", "short-deadline"])
async def test_a_frozen_database_is_unavailable_within_one_bound(
        quick, pg_admin_url, database_url, client_deadline):
    """SignIn and Refresh against a frozen database answer UNAVAILABLE within
    AUTHSVC_DB_TIMEOUT (not twice it), or within the client's own shorter deadline."""
    bound = DB_TIMEOUT if client_deadline is None else min(DB_TIMEOUT, client_deadline)
    async with frozen(pg_admin_url, database_url):
        started = time.monotonic()
        answers = await asyncio.gather(
            fails(quick.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                      password=PASSWORD),
                               timeout=client_deadline)),
            fails(quick.Refresh(auth_pb2.RefreshRequest(refresh_token="x" * 43),
                                timeout=client_deadline)),
            fails(quick.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                      password=PASSWORD),
                               timeout=client_deadline)))  # waits for the pool
        took = time.monotonic() - started

    assert {a.code for a in answers} == {grpc.StatusCode.UNAVAILABLE}
    assert took < bound + SLACK, f"{took:.2f} s against a bound of {bound} s"
