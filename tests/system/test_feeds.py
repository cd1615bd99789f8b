"""Revocation feeds that go silent: trust ends a bounded time after the last word.

A frozen authsvc (SIGSTOP, its connections still open) keeps a LocalVerifier's
stream open but silent; a stalled PostgreSQL connection keeps authsvc's own
LISTEN open but silent. Neither may be trusted past its staleness bound,
counted from the last message actually received.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from urllib.parse import urlsplit

import asyncpg
import grpc

from authsvc.errors import TokenRevoked, Unavailable
from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.store.listener import APPLICATION_NAME
from authsvc.v1 import auth_pb2, auth_pb2_grpc
from authsvc.verifiers import LocalVerifier

from ..helpers import PASSWORD, eventually, fails, parse, sign_in
from ..servers import AuthsvcProcess, free_port, new_key, server_env

MAX_STALENESS = 2.0
SLACK = 2.0  # scheduling on a loaded 2-core machine; the bound itself is exact


async def refused_within(verify, token: str, deadline: float) -> float:
    """Seconds until ``verify(token)`` fails closed; fails the test past ``deadline``."""

    async def refused() -> bool:
        try:
            await verify(token)
        except Unavailable:
            return True
        return False

    started = time.monotonic()
    await eventually(refused, deadline, "the token to be refused once the feed went silent",
                     interval=0.05)
    return time.monotonic() - started


async def test_a_local_verifier_stops_trusting_a_frozen_authsvc(database_url):
    """SIGSTOP authsvc: the verifier's stream stays open but silent, and within
    max_staleness of the last heartbeat every token is UNAVAILABLE."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    try:
        server.start().wait_ready()
        async with grpc.aio.insecure_channel(server.address) as channel:
            await _add_user(database_url, env, "alice@example.com")
            await _add_user(database_url, env, "watcher@example.com",
                            "--scope", "authsvc.revocations")
            signed_in = await sign_in(auth_pb2_grpc.AuthStub(channel))
            watcher = await sign_in(auth_pb2_grpc.AuthStub(channel),
                                    email="watcher@example.com")
        async with LocalVerifier(server.address, max_staleness=MAX_STALENESS,
                                 access_token=lambda: watcher.access_token) as verifier:
            trusted = await verifier.verify_async(signed_in.access_token)
            server.signal(signal.SIGSTOP)
            try:
                took = await refused_within(verifier.verify_async, signed_in.access_token,
                                            MAX_STALENESS + SLACK)
            finally:
                server.signal(signal.SIGCONT)
    finally:
        server.stop()

    assert trusted.session_id == signed_in.session_id
    assert took <= MAX_STALENESS + SLACK


async def _add_user(database_url: str, env: dict[str, str], email: str, *flags: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *_cli("users", "add", "--email", email, "--password-stdin",
              "--database-url", database_url, *flags),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    await process.communicate(PASSWORD.encode())
    assert process.returncode == 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "authsvc", *args]


async def test_authsvc_stops_trusting_a_stalled_listen_connection(
        settings, database_url, clock, pg_admin_url):
    """SIGSTOP the PostgreSQL backend of authsvc's LISTEN connection: within
    max_staleness of its last answered ping the set is no longer trusted, and
    Validate asks the database instead (a revocation it never heard is refused)."""
    stale = dataclasses.replace(settings, revocation_max_staleness=MAX_STALENESS)
    async with running_app(stale, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        signed_in = await sign_in(stub)
        admin = await asyncpg.connect(pg_admin_url)
        try:
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
                " AND datname = $2", APPLICATION_NAME, urlsplit(database_url).path[1:])
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                # A clock, not an event, ends the trust: hence a poll.
                await eventually(lambda: not app.revocations.trusted, MAX_STALENESS + SLACK,
                                 "the revocation set to stop trusting the silent connection",
                                 interval=0.05)
                took = time.monotonic() - started
                async with app.db.connection() as conn:  # a revocation it cannot hear
                    await conn.execute(
                        "UPDATE sessions SET revoked_at = now() WHERE id = $1::text::uuid",
                        signed_in.session_id)
                refused = await fails(stub.Validate(auth_pb2.ValidateRequest(
                    access_token=signed_in.access_token)))
            finally:
                os.kill(pid, signal.SIGCONT)
        finally:
            await admin.close()

    assert took <= MAX_STALENESS + SLACK
    assert refused.reason == TokenRevoked.reason


async def test_the_per_peer_stream_limit_holds_across_workers(database_url):
    """Two workers, AUTHSVC_WATCH_STREAMS_PER_PEER=2: of eight streams from one
    address on eight connections (spread over both workers by the kernel), at most
    two are admitted; the others are RESOURCE_EXHAUSTED RATE_LIMITED."""
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_WATCH_STREAMS_PER_PEER="2")
    server = AuthsvcProcess(free_port(), env, ["--workers", "2"])
    channels = []
    try:
        server.start().wait_ready()
        await _add_user(database_url, env, "watcher@example.com",
                        "--scope", "authsvc.revocations")
        async with grpc.aio.insecure_channel(server.address) as channel:
            watcher = await sign_in(auth_pb2_grpc.AuthStub(channel), email="watcher@example.com")
        # A local subchannel pool each: eight TCP connections, not one shared.
        channels = [grpc.aio.insecure_channel(
            server.address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(8)]
        streams = [auth_pb2_grpc.AuthStub(c).WatchRevocations(
            auth_pb2.WatchRevocationsRequest(),
            metadata=(("authorization", f"Bearer {watcher.access_token}"),))
            for c in channels]
        admitted, refused = 0, []
        for stream in streams:
            try:
                admitted += (await stream.read()).snapshot
            except grpc.RpcError as error:
                refused.append(parse(error))
    finally:
        for channel in channels:
            await channel.close()
        server.stop()

    assert 1 <= admitted <= 2
    assert {(f.code, f.reason) for f in refused} == {(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                      "RATE_LIMITED")}
