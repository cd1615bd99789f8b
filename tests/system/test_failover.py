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
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from argon2 import PasswordHasher, profiles

from authsvc.domain.sessions.refresh_tokens import RefreshTokens
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, parse
from ..servers import AuthsvcProcess, free_port, new_key, poll_until, server_env
from .replication import Cluster, init_template, make_root, streaming

DB_TIMEOUT = 2.0   # AUTHSVC_DB_TIMEOUT: each host's connect timeout, each call's database time
RECOVERY = DB_TIMEOUT + 2.0   # failover: calls succeed again this soon after the promotion
DEADLINE = 8.0     # every client call carries this gRPC deadline
USERS = 4
WRITES = ("signin", "refresh", "revoke")
KEK = new_key()    # AUTHSVC_KEY_ENCRYPTION_KEY: it also keys the refresh tokens


@dataclass
class Outcome:
    """What one client call got, and when (monotonic seconds)."""

    kind: str
    started: float
    finished: float
    code: grpc.StatusCode
    reason: str | None = None
    reply: Any = None
    session_id: str | None = None


@dataclass
class Ledger:
    """Every answer the load got, to hold against the promoted standby's rows."""

    outcomes: list[Outcome] = field(default_factory=list)

    async def call(self, kind: str, rpc: Callable[[], Awaitable[Any]],
                   session_id: str | None = None) -> Outcome:
        started = time.monotonic()
        try:
            reply = await rpc()
            outcome = Outcome(kind, started, time.monotonic(), grpc.StatusCode.OK, reply=reply,
                              session_id=getattr(reply, "session_id", None) or session_id)
        except grpc.RpcError as error:
            failure = parse(error)
            outcome = Outcome(kind, started, time.monotonic(), failure.code, failure.reason,
                              session_id=session_id)
        self.outcomes.append(outcome)
        return outcome

    def ok(self, kind: str, since: float = 0.0) -> list[Outcome]:
        return [o for o in self.outcomes
                if o.kind == kind and o.code == grpc.StatusCode.OK and o.started >= since]

    def unavailable(self, since: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in WRITES and o.started >= since
                and o.code == grpc.StatusCode.UNAVAILABLE]


async def lifecycle(stub: auth_pb2_grpc.AuthStub, ledger: Ledger, email: str,
                    stop: asyncio.Event) -> None:
    """Sign in, validate, refresh twice, revoke; start over after any failure."""
    while not stop.is_set():
        signed = await ledger.call("signin", lambda: stub.SignIn(
            auth_pb2.SignInRequest(email=email, password=PASSWORD), timeout=DEADLINE))
        if signed.code != grpc.StatusCode.OK:
            await asyncio.sleep(0.05)  # pacing while no database answers
            continue
        refresh, session_id = signed.reply.refresh_token, signed.reply.session_id
        await ledger.call("validate", lambda t=signed.reply.access_token: stub.Validate(
            auth_pb2.ValidateRequest(access_token=t), timeout=DEADLINE))
        for _ in range(2):
            rotated = await ledger.call("refresh", lambda r=refresh: stub.Refresh(
                auth_pb2.RefreshRequest(refresh_token=r), timeout=DEADLINE), session_id)
            if rotated.code != grpc.StatusCode.OK:
                break
            refresh = rotated.reply.refresh_token
        else:
            await ledger.call("revoke", lambda r=refresh: stub.Revoke(
                auth_pb2.RevokeRequest(token=r), timeout=DEADLINE), session_id)


@contextlib.asynccontextmanager
async def load(stub: auth_pb2_grpc.AuthStub, ledger: Ledger) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(lifecycle(stub, ledger, f"user{i}@example.com", stop))
             for i in range(USERS)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


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
        await poll_until_async(lambda: streaming(made.primary.url(), synchronous=True),
                               60, "the standby to stream synchronously")
        yield made
    finally:
        await asyncio.to_thread(made.close)


async def poll_until_async(check: Callable[[], Awaitable[bool]], timeout: float,
                           what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.1)


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
    async with load(stub, ledger):
        await poll_until(lambda: len(ledger.ok("revoke")) >= 3, 30, "load before the failure")
        failed_at = time.monotonic()
        await asyncio.to_thread(getattr(cluster.primary, failure))
        await poll_until(lambda: len(ledger.unavailable(failed_at)) >= 3, 30,
                         "authsvc to notice the failure")
        await asyncio.to_thread(cluster.standby.promote)
        promoted = time.monotonic()
        await poll_until(lambda: all(ledger.ok(k, promoted) for k in (*WRITES, "validate")),
                         30, "every kind of call to succeed after the promotion")
        await poll_until(lambda: len(ledger.ok("revoke", promoted)) >= 3, 30,
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
    async with load(stub, ledger):
        await poll_until(lambda: len(ledger.ok("revoke")) >= 3, 30, "load before the stall")
        receiver = cluster.standby.walreceiver()
        receiver.suspend()
        stalled = time.monotonic()
        try:
            await poll_until(lambda: len(ledger.unavailable(stalled)) >= 6, 30,
                             "writes to be refused while the standby is stalled")
            await asyncio.to_thread(cluster.primary.kill)
            killed = time.monotonic()
        finally:
            receiver.resume()
        await asyncio.to_thread(cluster.standby.promote)
        promoted = time.monotonic()
        await poll_until(lambda: len(ledger.ok("revoke", promoted)) >= 3, 30,
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
