"""The database dies under load and comes back; authsvc dies mid-sign-in.

During an outage SignIn, Refresh and Revoke answer UNAVAILABLE before the
client's deadline; Validate answers from the revocation set for
AUTHSVC_REVOCATION_MAX_STALENESS, then asks the database and fails closed.
Within two seconds of the database's return everything succeeds again, and
the rows match what clients were told: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from argon2 import PasswordHasher, profiles

from authsvc.config import Secret, Settings
from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.store.database import migrate
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, eventually
from ..load import Ledger, Outcome, load
from ..servers import AuthsvcProcess, free_port, new_key, server_env

STALENESS = 1.0    # AUTHSVC_REVOCATION_MAX_STALENESS for these tests
DEADLINE = 8.0     # every client call carries this deadline
RECOVERY = 2.0     # everything succeeds again this soon after the database is back
USERS = 4
PACING = 0.02      # a refused user's pause before signing in again


class DedicatedPostgres:
    """A PostgreSQL of this module's own (pgserver binaries), stopped and started
    with pg_ctl the way pgserver runs it: as user ``pgserver`` when root, on the
    same Unix socket directory."""

    def __init__(self, root: Path) -> None:
        import pgserver

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server = pgserver.get_server(root / "pg", cleanup_mode="stop")
        info = self._server.get_postmaster_info()
        self.pgdata = root / "pg"
        self.socket_dir = Path(info.socket_dir)
        self.pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        self._user = "pgserver" if os.geteuid() == 0 else None
        self.url = f"postgresql://postgres@/authsvc?host={self.socket_dir}"
        self._server.psql("CREATE DATABASE authsvc;")

    def _ctl(self, *args: str) -> None:
        # runuser, not subprocess's user=: that forks without vfork, and a forked
        # child of a process running gRPC's threads can crash before it execs.
        prefix = [] if self._user is None else ["runuser", "-u", self._user, "--"]
        subprocess.run([*prefix, str(self.pg_ctl), "-D", str(self.pgdata), *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)

    def stop(self, mode: str = "fast", wait: bool = True) -> None:
        self._ctl("-m", mode, "-w" if wait else "-W", "stop")

    def start(self) -> None:
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                  "-l", str(self.pgdata / "log"), "start")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")


@pytest.fixture(scope="module")
def postgres() -> Iterator[DedicatedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="authsvc-outage-", dir="/tmp"))
    os.chmod(root, 0o755)  # noqa: S103 (pgserver's own user must reach its data directory)
    server = DedicatedPostgres(root)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def outage_url(postgres: DedicatedPostgres) -> AsyncIterator[str]:
    """The dedicated server's authsvc database, migrated and emptied."""
    conn = await asyncpg.connect(postgres.url)
    try:
        await migrate(conn)
        await conn.execute("TRUNCATE users, sessions, refresh_tokens, auth_events CASCADE")
        hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
        for i in range(USERS):
            await conn.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
                " VALUES (gen_random_uuid(), $1, $2, now(), now())",
                f"user{i}@example.com", hasher.hash(PASSWORD))
    finally:
        await conn.close()
    yield postgres.url


@pytest.fixture
async def stub(outage_url: str) -> AsyncIterator[auth_pb2_grpc.AuthStub]:
    """An in-process authsvc on the dedicated database, with a short staleness."""
    settings = Settings(
        database_url=Secret(outage_url), key_encryption_key=Secret(os.urandom(32)),
        argon2_profile="test-only-cheapest", hash_threads=2, workers=1,
        listen="127.0.0.1:0", db_pool_size=10, db_timeout=2.0,
        revocation_max_staleness=STALENESS, metrics_listen=None)
    async with running_app(settings, outage_url) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield auth_pb2_grpc.AuthStub(channel)


async def accepts_connections(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    conn.terminate()  # no goodbye message: the server may be going away under us
    return True


async def test_database_outage_under_load(stub, postgres, outage_url):
    """The whole outage story: UNAVAILABLE (never INTERNAL, never past the
    deadline) while the database is down, Validate from the set then failing
    closed, full service within two seconds of its return, and rows that match
    what the clients were told."""
    ledger, probes = Ledger(), Ledger()
    kept = await stub.SignIn(auth_pb2.SignInRequest(email="user0@example.com",
                                                    password=PASSWORD))
    ended = await stub.SignIn(auth_pb2.SignInRequest(email="user0@example.com",
                                                     password=PASSWORD))
    await stub.Revoke(auth_pb2.RevokeRequest(token=ended.refresh_token))
    async with load(stub, ledger, USERS, deadline=DEADLINE, pacing=PACING):
        await eventually(lambda: len(ledger.ok("revoke")) >= 5, 20, "load before the outage")

        # The database goes away (fast shutdown: it refuses new connections and
        # terminates every session at once, then writes a checkpoint and exits).
        went_down = time.monotonic()
        stopping = asyncio.ensure_future(asyncio.to_thread(postgres.stop, "fast"))
        validations: list[Outcome] = []
        refused_at = None  # when the database first refused a connection
        rounds = 0         # of probes that need the database, once it has stopped
        while (time.monotonic() - went_down < 30 and not (
                stopping.done() and rounds >= 3
                and time.monotonic() - went_down > STALENESS + 2.5)):
            validations.append(await probes.call("validate", lambda: stub.Validate(
                auth_pb2.ValidateRequest(access_token=kept.access_token), timeout=DEADLINE)))
            await probes.call("validate-revoked", lambda: stub.Validate(
                auth_pb2.ValidateRequest(access_token=ended.access_token), timeout=DEADLINE))
            if refused_at is None and not await accepts_connections(outage_url):
                refused_at = time.monotonic()
            if stopping.done():
                rounds += 1
                await probes.call("signin", lambda: stub.SignIn(auth_pb2.SignInRequest(
                    email="user0@example.com", password=PASSWORD), timeout=DEADLINE))
                await probes.call("refresh", lambda: stub.Refresh(auth_pb2.RefreshRequest(
                    refresh_token=kept.refresh_token), timeout=DEADLINE))
                await probes.call("revoke", lambda: stub.Revoke(auth_pb2.RevokeRequest(
                    token=kept.refresh_token), timeout=DEADLINE))
            await asyncio.sleep(0.02)  # the probes' pace through the outage, not a wait
        await stopping
        down_until = time.monotonic()
        failed_while_down = [o for o in ledger.outcomes if went_down <= o.started <= down_until
                             and o.code == grpc.StatusCode.UNAVAILABLE]

        # It comes back.
        await asyncio.to_thread(postgres.start)
        back = time.monotonic()
        recovered: dict[str, float] = {}

        async def all_recovered() -> bool:
            for kind, rpc in {
                "signin": lambda: stub.SignIn(auth_pb2.SignInRequest(
                    email="user0@example.com", password=PASSWORD), timeout=DEADLINE),
                "validate": lambda: stub.Validate(auth_pb2.ValidateRequest(
                    access_token=kept.access_token), timeout=DEADLINE),
                "refresh": lambda: stub.Refresh(auth_pb2.RefreshRequest(
                    refresh_token=kept.refresh_token), timeout=DEADLINE),
                "revoke": lambda: stub.Revoke(auth_pb2.RevokeRequest(
                    token="unknown-token"), timeout=DEADLINE),
            }.items():
                if kind not in recovered:
                    outcome = await probes.call(kind + "-after", rpc)
                    if outcome.code == grpc.StatusCode.OK:
                        recovered[kind] = outcome.finished - back
            return len(recovered) == 4

        await eventually(all_recovered, 10, lambda: "every kind of call to succeed after"
                         f" the database came back (so far {recovered})")
        after_ok = len(ledger.ok("revoke"))
        await eventually(lambda: len(ledger.ok("revoke")) >= after_ok + 5, 20,
                         "load after the outage")

    # While down: UNAVAILABLE for everything that needs the database, in time.
    for kind in ("signin", "refresh", "revoke"):
        codes = Counter(o.code for o in probes.failed(kind))
        assert probes.ok(kind) == [] and set(codes) == {grpc.StatusCode.UNAVAILABLE}, codes
    everything = ledger.outcomes + probes.outcomes
    assert {o.code for o in everything} <= {
        grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED}
    assert max(o.finished - o.started for o in everything) < DEADLINE
    assert {(o.code, o.reason) for o in ledger.outcomes
            if o.code == grpc.StatusCode.UNAUTHENTICATED} <= {
        (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")}
    assert failed_while_down, "the load saw no outage"
    # Validate: a revoked session stays refused; a live one is answered from
    # the set for the staleness bound after the feed's last word (its last
    # answered ping, at most a third of the bound before the outage), then
    # fails closed.
    assert {(o.code, o.reason) for o in probes.outcomes if o.kind == "validate-revoked"} == {
        (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")}
    assert refused_at is not None
    assert {o.code for o in validations
            if o.finished < went_down + STALENESS * 2 / 3} == {grpc.StatusCode.OK}
    assert any(o.code == grpc.StatusCode.OK for o in validations if o.started > refused_at)
    assert {o.code for o in validations if o.started > went_down + STALENESS + 1.5} == {
        grpc.StatusCode.UNAVAILABLE}
    # Back: everything succeeds within two seconds.
    assert set(recovered) == {"signin", "validate", "refresh", "revoke"}, recovered
    assert max(recovered.values()) < RECOVERY, recovered
    await assert_rows_match(outage_url, ledger, probes, (kept.session_id, ended.session_id))


async def assert_rows_match(url: str, ledger: Ledger, probes: Ledger,
                            earlier: tuple[str, ...]) -> None:
    """Every success the load was told about is in the database exactly once;
    rows no client heard about come only from calls that failed (at most one
    each: the commit can land just as the connection drops)."""
    conn = await asyncpg.connect(url)
    try:
        sessions = {str(r["id"]): r for r in await conn.fetch(
            "SELECT s.id, s.revoked_at, s.refresh_counter AS counter,"
            " s.refresh_moved_at IS NOT NULL AS moved,"
            " (SELECT count(*) FROM auth_events e WHERE e.session_id = s.id"
            "   AND e.kind = 'signin.success') AS signins,"
            " (SELECT count(*) FROM auth_events e WHERE e.session_id = s.id"
            "   AND e.kind = 'refresh.success') AS refreshes,"
            " (SELECT count(*) FROM auth_events e WHERE e.session_id = s.id"
            "   AND e.kind = 'session.revoked') AS revocations"
            " FROM sessions s")}
        orphans = await conn.fetchval(
            "SELECT count(*) FROM auth_events e WHERE e.session_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = e.session_id)")
    finally:
        await conn.close()

    def ok(kind: str) -> list[Outcome]:
        return ledger.ok(kind) + probes.ok(kind) + probes.ok(kind + "-after")

    def failed(kind: str) -> list[Outcome]:
        return ledger.failed(kind) + probes.failed(kind) + probes.failed(kind + "-after")

    signed_in = [o.session_id for o in ok("signin")]
    assert len(set(signed_in)) == len(signed_in)
    assert [sid for sid in signed_in if sid not in sessions] == []  # none lost
    unheard = set(sessions) - set(signed_in) - set(earlier)
    assert len(unheard) <= len(failed("signin"))
    assert orphans == 0
    for sid, row in sessions.items():  # none duplicated, none partial
        assert row["signins"] == 1, (sid, dict(row))
        # Every move of the counter was audited with it (a retry within the grace
        # is audited too, without a move).
        assert row["counter"] <= row["refreshes"], (sid, dict(row))
        assert row["moved"] == (row["counter"] > 0), (sid, dict(row))
        assert row["revocations"] == (0 if row["revoked_at"] is None else 1), (sid, dict(row))
    refreshed = Counter(o.session_id for o in ok("refresh"))
    for sid, times in refreshed.items():
        assert sessions[sid]["refreshes"] >= times, sid
    unheard_refreshes = sum(r["refreshes"] for r in sessions.values()) - sum(refreshed.values())
    assert 0 <= unheard_refreshes <= len(failed("refresh"))
    for revoke in ledger.ok("revoke"):
        assert sessions[str(revoke.session_id)]["revoked_at"] is not None


async def test_sigkill_mid_sign_in_leaves_no_partial_rows(database_url):
    """SIGKILL while sign-ins are being written leaves only whole sign-ins: every
    session has its unmoved refresh counter and exactly one signin.success event."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
            " VALUES (gen_random_uuid(), 'kill@example.com', $1, now(), now())",
            PasswordHasher.from_parameters(profiles.CHEAPEST).hash(PASSWORD))
    finally:
        await conn.close()
    # Sixteen clients sign the same user in from one address at once: each attempt
    # holds a throttle slot until it succeeds, so the budgets are raised above
    # that; this test is about crash atomicity, not throttling.
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_THROTTLE_PAIR_FREE="1000", AUTHSVC_THROTTLE_IDENTIFIER_FREE="1000")
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    answered, killed = 0, False
    refused_before_the_kill: list[grpc.StatusCode] = []
    try:
        server.start().wait_ready()
        async with grpc.aio.insecure_channel(server.address) as channel:
            auth = auth_pb2_grpc.AuthStub(channel)

            async def sign_in_repeatedly() -> None:
                nonlocal answered
                for _ in range(200):
                    try:
                        await auth.SignIn(auth_pb2.SignInRequest(
                            email="kill@example.com", password=PASSWORD), timeout=DEADLINE)
                        answered += 1
                    except grpc.RpcError as exc:
                        if killed:
                            return  # the server is gone
                        # A loaded machine may make a call miss its deadline before
                        # the kill; the client goes on, as a real one would.
                        refused_before_the_kill.append(exc.code())

            clients = [asyncio.create_task(sign_in_repeatedly()) for _ in range(16)]
            await eventually(lambda: answered >= 30, 60, lambda: "30 sign-ins before the kill"
                             f" ({answered} answered, refused: {refused_before_the_kill})")
            killed = True
            server.signal(signal.SIGKILL)
            await asyncio.gather(*clients)
    finally:
        killed = True
        server.stop()

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT s.id, s.refresh_counter AS counter,"
            " (SELECT count(*) FROM auth_events e WHERE e.session_id = s.id"
            "   AND e.kind = 'signin.success') AS signins"
            " FROM sessions s")
        orphan_events = await conn.fetchval(
            "SELECT count(*) FROM auth_events e WHERE e.kind = 'signin.success'"
            " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = e.session_id)")
    finally:
        await conn.close()
    assert len(rows) >= answered >= 30
    assert {(r["counter"], r["signins"]) for r in rows} == {(0, 1)}
    assert orphan_events == 0
