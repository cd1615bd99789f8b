"""Several replicas on one PostgreSQL: any replica answers for any session, a
revocation on one is refused by the others within a second, and a round_robin
client rides out the loss of a replica.

Client-side retry is part of the contract: a call in flight on a replica that
dies fails with UNAVAILABLE, and the client retries it on another replica
(the service config below). Validate, Revoke and GetJwks are safe to retry;
Refresh is too, within AUTHSVC_REFRESH_REUSE_INTERVAL, because a retried
refresh gets the identical successor.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator

import asyncpg
import grpc
import pytest
from argon2 import PasswordHasher, profiles

from authsvc.config import Settings
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..conftest import with_database
from ..helpers import PASSWORD, eventually, parse
from ..servers import AuthsvcProcess, free_port, new_key, server_env, stop_all

REVOCATION_DEADLINE = 1.0

# What a client of several replicas should use: round_robin over every
# address, and retries of UNAVAILABLE on another replica.
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "authsvc.v1.Auth"}],
        "timeout": "5s",
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoff": "0.05s",
            "maxBackoff": "0.5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
}
CLIENT_OPTIONS = [
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    # Try a restarted replica again soon (the default backoff starts at 1 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@pytest.fixture(scope="module")
def module_database_url(pg_admin_url: str, template_name: str) -> Iterator[str]:
    """A fresh migrated database shared by this module's tests (and replicas)."""
    name = f"authsvc_replicas_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    asyncio.run(run(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    yield with_database(pg_admin_url, name)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def replicas(module_database_url: str) -> Iterator[list[AuthsvcProcess]]:
    """Three authsvc processes, one worker each, on separate ports and one database."""
    env = server_env(AUTHSVC_DATABASE_URL=module_database_url,
                     AUTHSVC_KEY_ENCRYPTION_KEY=new_key())
    servers = [AuthsvcProcess(free_port(), env, ["--workers", "1"]) for _ in range(3)]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        stop_all(servers)


async def add_user(database_url: str, email: str) -> None:
    """A user row straight into the database (the CLI would cost a process start)."""
    password_hash = PasswordHasher.from_parameters(profiles.CHEAPEST).hash(PASSWORD)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
            " VALUES (gen_random_uuid(), $1, $2, now(), now())", email, password_hash)
    finally:
        await conn.close()


def stub(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthStub:
    return auth_pb2_grpc.AuthStub(channel)


async def test_a_revocation_on_one_replica_is_refused_by_another_within_a_second(
        replicas, module_database_url):
    """Sign in on the first replica, validate on the second, revoke on the third:
    the second answers UNAUTHENTICATED / TOKEN_REVOKED in under a second."""
    await add_user(module_database_url, "alice@example.com")
    first, second, third = (grpc.aio.insecure_channel(r.address) for r in replicas)
    try:
        tokens = await stub(first).SignIn(
            auth_pb2.SignInRequest(email="alice@example.com", password=PASSWORD))
        valid = await stub(second).Validate(
            auth_pb2.ValidateRequest(access_token=tokens.access_token))

        await stub(third).Revoke(auth_pb2.RevokeRequest(token=tokens.refresh_token))
        revoked_at = time.monotonic()
        refusal = None

        async def refused() -> bool:
            nonlocal refusal
            try:
                await stub(second).Validate(
                    auth_pb2.ValidateRequest(access_token=tokens.access_token))
            except grpc.RpcError as error:
                refusal = parse(error)
            return refusal is not None

        await eventually(refused, 5, "the second replica to refuse the revoked token",
                         interval=0.001)
        took = time.monotonic() - revoked_at
    finally:
        for channel in (first, second, third):
            await channel.close()

    assert valid.session_id == tokens.session_id
    assert refusal is not None
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    assert took < REVOCATION_DEADLINE, f"took {took:.3f} s"


async def test_round_robin_client_sees_no_error_while_a_replica_is_killed_and_restarted(
        replicas, module_database_url):
    """A steady stream of Validate calls over round_robin with retries gets no
    error while one replica is SIGKILLed and started again."""
    await add_user(module_database_url, "bob@example.com")
    target = "ipv4:" + ",".join(r.address for r in replicas)
    errors: list[grpc.StatusCode] = []
    answered = 0
    stop = asyncio.Event()
    async with grpc.aio.insecure_channel(target, options=CLIENT_OPTIONS) as channel:
        tokens = await stub(channel).SignIn(
            auth_pb2.SignInRequest(email="bob@example.com", password=PASSWORD))
        request = auth_pb2.ValidateRequest(access_token=tokens.access_token)

        async def validate_steadily() -> None:
            nonlocal answered
            for _ in range(20_000):  # bounded; stop ends it long before
                if stop.is_set():
                    return
                try:
                    await stub(channel).Validate(request)
                    answered += 1
                except grpc.RpcError as error:
                    errors.append(error.code())  # type: ignore[attr-defined]

        async def answered_by_now(at_least: int) -> None:
            await eventually(lambda: answered >= at_least, 10, f"{at_least} answers")

        clients = [asyncio.create_task(validate_steadily()) for _ in range(4)]
        try:
            await answered_by_now(200)
            victim = replicas[1]
            victim.signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 10)
            before_restart = answered
            await answered_by_now(before_restart + 200)  # two replicas carry the load
            await asyncio.to_thread(lambda: victim.start().wait_ready())
            after_restart = answered
            await answered_by_now(after_restart + 200)
        finally:
            stop.set()
            await asyncio.gather(*clients)
        # The restarted replica is back in the rotation.
        async with grpc.aio.insecure_channel(victim.address) as direct:
            again = await stub(direct).Validate(request, timeout=5)

    assert errors == []
    assert before_restart >= 200
    assert answered >= after_restart + 200
    assert again.session_id == tokens.session_id


def test_metrics_can_be_turned_off_so_replicas_share_a_host():
    """AUTHSVC_METRICS_LISTEN=off serves no metrics, so replicas on one host do
    not fight over the metrics port."""
    settings = Settings.from_env({"AUTHSVC_METRICS_LISTEN": "off"})

    assert settings.metrics_listen is None
