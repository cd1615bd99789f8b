"""A real failover: a PostgreSQL primary and a synchronous streaming standby
(``replication.py``), authsvc as a child process on the multi-host URL
``postgresql://primary,standby/authsvc?target_session_attrs=read-write``, and
client load whose every answer is recorded.

- The primary freezes (SIGSTOP: it still accepts TCP, never answers) or dies;
  the standby is promoted; every kind of call succeeds again within
  AUTHSVC_DB_TIMEOUT + 2 s of the promotion (each host has its own connect
  timeout, so the frozen one cannot hide the new primary).
- With synchronous replication no acknowledged SignIn, Refresh or Revoke is
  lost: every OK the clients heard is on the promoted standby.
- With the replication link stalled, commits wait for the standby: clients get
  UNAVAILABLE by their deadline, never an OK that the failover then loses.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from argon2 import PasswordHasher, profiles

from authsvc.domain.sessions.refresh_tokens import RefreshTokens
from authsvc.v1 import auth_pb2_grpc

from ..helpers import PASSWORD, eventually
from ..load import WRITES, Ledger, load
from ..servers import AuthsvcProcess, free_port, new_key, server_env
from .replication import Cluster, init_template, make_root, streaming

DB_TIMEOUT = 2.0   # AUTHSVC_DB_TIMEOUT: each host's connect timeout, each call's database time
RECOVERY = DB_TIMEOUT + 2.0   # failover: calls succeed again this soon after the promotion
DEADLINE = 8.0     # every client call carries this gRPC deadline
USERS = 4
PACING = 0.05      # a refused user's pause before signing in again
KEK = new_key()    # AUTHSVC_KEY_ENCRYPTION_KEY: it also keys the refresh tokens


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """An initialised primary data directory, copied for each test's cluster."""
    root = make_root("authsvc-failover-")
    try:
        yield init_template(root, fsync=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def cluster(template: Path) -> AsyncIterator[Cluster]:
    """A primary and its synchronous standby, streaming."""
    made = await asyncio.to_thread(Cluster, template.parent, template)
    try:
        await eventually(lambda: streaming(made.primary.url(), synchronous=True),
                         60, "the standby to stream synchronously", interval=0.1)
        yield made
    finally:
        await asyncio.to_thread(made.close)


@pytest.fixture
async def stub(cluster: Cluster) -> AsyncIterator[auth_pb2_grpc.AuthStub]:
    """authsvc (one worker) on the multi-host URL, with USERS users."""
    env = server_env(AUTHSVC_DATABASE_URL=cluster.url(), AUTHSVC_KEY_ENCRYPTION_KEY=KEK,
                     AUTHSVC_DB_TIMEOUT=str(DB_TIMEOUT))
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    try:
        await asyncio.to_thread(lambda: server.start().wait_ready())
        conn = await asyncpg.connect(cluster.primary.url())
        try:
            hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
            for i in range(USERS):
                await conn.execute(
                    "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
                    " VALUES (gen_random_uuid(), $1, $2, now(), now())",
                    f"user{i}@example.com", hasher.hash(PASSWORD))
        finally:
            await conn.close()
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield auth_pb2_grpc.AuthStub(channel)
    finally:
        await asyncio.to_thread(server.stop)


async def assert_nothing_acknowledged_lost(url: str, ledger: Ledger) -> None:
    """Every session a SignIn OK named exists, every Refresh OK moved its session's
    refresh counter to the counter of the token it handed out (or further), every
    session a Revoke OK ended is revoked."""
    conn = await asyncpg.connect(url)
    try:
        sessions = {str(r["id"]): r for r in await conn.fetch(
            "SELECT id, revoked_at, refresh_counter FROM sessions")}
    finally:
        await conn.close()
    tokens = RefreshTokens(base64.urlsafe_b64decode(KEK))

    def kept(refresh_token: str) -> bool:
        handed_out = tokens.read(refresh_token)
        assert handed_out is not None
        row = sessions.get(handed_out.session_id)
        return row is not None and row["refresh_counter"] >= handed_out.counter

    signed_in, refreshed, revoked = (ledger.ok(kind) for kind in WRITES)
    assert signed_in and refreshed and revoked
    assert [o.session_id for o in signed_in if o.session_id not in sessions] == []
    assert [o.session_id for o in refreshed if not kept(o.reply.refresh_token)] == []
    assert [o.session_id for o in revoked
            if str(o.session_id) not in sessions
            or sessions[str(o.session_id)]["revoked_at"] is None] == []


def assert_answers_are_clean(ledger: Ledger) -> None:
    """OK, UNAVAILABLE (retryable), or a revoked session's token refused; never
    INTERNAL, never past the client's deadline."""
    assert {o.code for o in ledger.outcomes} <= {
        grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED}
    assert {o.reason for o in ledger.outcomes
            if o.code == grpc.StatusCode.UNAUTHENTICATED} <= {"TOKEN_REVOKED"}


@pytest.mark.parametrize("failure", ["freeze", "kill"])
async def test_the_promoted_standby_takes_over_in_time_and_nothing_acknowledged_is_lost(
        cluster, stub, failure):
    """The primary freezes (SIGSTOP) or dies (SIGKILL) under load; once authsvc
    answers UNAVAILABLE the standby is promoted. Every kind of call succeeds again
    within AUTHSVC_DB_TIMEOUT + 2 s of the promotion, and every SignIn, Refresh
    and Revoke that was answered OK, before or after, is on the new primary."""
    ledger = Ledger()
    async with load(stub, ledger, USERS, deadline=DEADLINE, pacing=PACING):
        await eventually(lambda: len(ledger.ok("revoke")) >= 3, 30, "load before the failure")
        failed_at = time.monotonic()
        await asyncio.to_thread(getattr(cluster.primary, failure))
        await eventually(lambda: len(ledger.unavailable(failed_at)) >= 3, 30,
                         "authsvc to notice the failure")
        await asyncio.to_thread(cluster.standby.promote)
        promoted = time.monotonic()
        await eventually(lambda: all(ledger.ok(k, promoted) for k in (*WRITES, "validate")),
                         30, "every kind of call to succeed after the promotion")
        await eventually(lambda: len(ledger.ok("revoke", promoted)) >= 3, 30,
                         "load after the promotion")

    recovered = {kind: min(o.finished for o in ledger.ok(kind, promoted)) - promoted
                 for kind in (*WRITES, "validate")}
    assert max(recovered.values()) <= RECOVERY, recovered
    assert_answers_are_clean(ledger)
    await assert_nothing_acknowledged_lost(cluster.standby.url(), ledger)


async def test_a_stalled_standby_holds_commits_back_until_the_deadline(cluster, stub):
    """The standby's WAL receiver freezes: commits wait for it, so writes answer
    UNAVAILABLE by their deadline and none is acknowledged. The primary then dies
    with those commits; the standby, thawed and promoted, has everything that
    was acknowledged."""
    ledger = Ledger()
    async with load(stub, ledger, USERS, deadline=DEADLINE, pacing=PACING):
        await eventually(lambda: len(ledger.ok("revoke")) >= 3, 30, "load before the stall")
        receiver = cluster.standby.walreceiver()
        receiver.suspend()
        stalled = time.monotonic()
        try:
            await eventually(lambda: len(ledger.unavailable(stalled)) >= 6, 30,
                             "writes to be refused while the standby is stalled")
            await asyncio.to_thread(cluster.primary.kill)
            killed = time.monotonic()
        finally:
            receiver.resume()
        await asyncio.to_thread(cluster.standby.promote)
        promoted = time.monotonic()
        await eventually(lambda: len(ledger.ok("revoke", promoted)) >= 3, 30,
                         "load after the promotion")

    while_stalled = [o for o in ledger.outcomes if o.kind in WRITES
                     and stalled <= o.started and o.finished <= killed]
    assert while_stalled != []
    assert {(o.code, o.reason) for o in while_stalled} == {(grpc.StatusCode.UNAVAILABLE, None)}
    assert max(o.finished - o.started for o in while_stalled) < DEADLINE
    assert_answers_are_clean(ledger)
    await assert_nothing_acknowledged_lost(cluster.standby.url(), ledger)


def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    env = server_env(AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    return subprocess.run([sys.executable, "-m", "authsvc", "migrate", "--database-url", url],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


async def test_a_url_that_reaches_the_standby_is_told_so_at_start(cluster):
    """Listing the standby first without target_session_attrs reaches a read-only
    server: start-up (here ``authsvc migrate``) stops with one line saying so and
    what to do, exit 3; with ``target_session_attrs=read-write`` the same hosts
    in the same order reach the primary."""
    hosts = f"{cluster.standby.address},{cluster.primary.address}"

    refused = await asyncio.to_thread(_migrate, f"postgresql://postgres@{hosts}/authsvc")
    accepted = await asyncio.to_thread(
        _migrate, f"postgresql://postgres@{hosts}/authsvc?target_session_attrs=read-write")

    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.splitlines() == [
        f"authsvc: error: AUTHSVC_DATABASE_URL: PostgreSQL at {hosts}, database authsvc is "
        "read-only (a standby?); point the URL at the primary, or name every host with "
        "?target_session_attrs=read-write"]
    assert (accepted.returncode, accepted.stdout) == (0, "database is up to date\n"), \
        accepted.stderr
