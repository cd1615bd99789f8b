"""A database that refuses writes (a standby, a demoted primary) is UNAVAILABLE,
never INTERNAL, and the connection that reached it is not lent out again."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg
import grpc

from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, fails, sign_in


async def test_a_read_only_database_answers_unavailable_and_recovers(
        stub, app, user, pg_admin_url, database_url):
    """With the database read-only, SignIn is UNAVAILABLE (retryable, no reason);
    once it takes writes again, a retried SignIn succeeds: at most one more attempt
    meets a connection opened while the database was still read-only (that refusal
    expires the whole pool again)."""
    name = urlsplit(database_url).path[1:]
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1 AND application_name = 'authsvc'", name)
        refused = [await fails(stub.SignIn(auth_pb2.SignInRequest(
            email="alice@example.com", password=PASSWORD))) for _ in range(3)]
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    finally:
        await admin.close()

    attempts = []
    for _ in range(2):
        try:
            attempts.append((await sign_in(stub)).session_id)
            break
        except grpc.RpcError as exc:
            attempts.append(exc.code())

    assert {(r.code, r.reason) for r in refused} == {(grpc.StatusCode.UNAVAILABLE, None)}
    assert isinstance(attempts[-1], str), attempts
    assert set(attempts[:-1]) <= {grpc.StatusCode.UNAVAILABLE}
