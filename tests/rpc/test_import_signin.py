"""Imported users sign in with the password they had, and leave with authsvc's argon2id.

Their foreign hash (published vectors of each scheme) is checked at SignIn, then
replaced in the sign-in's own transaction; a wrong password changes nothing; two
racing sign-ins both succeed and upgrade once; a TOTP secret imported with the user
asks for the second factor as an enrolled one does.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json

import asyncpg
import bcrypt
import grpc
import pytest
from prometheus_client import REGISTRY

from authsvc.domain.factors import totp
from authsvc.runtime.app import App, running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import eventually, fails
from ..unit.test_foreign_hashes import DJANGO, FIREBASE
from .test_factors import complete, db_step, error_metadata

SCHEMES = [  # (password, password object) from the schemes' published vectors
    ("user1password", FIREBASE),
    (DJANGO[0][0], {"scheme": "django", "hash": DJANGO[0][1]}),
    (DJANGO[2][0], {"scheme": "django", "hash": DJANGO[2][1]}),
    ("password", {"scheme": "passlib", "hash": "$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw"
                                               "$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"}),
    ("password", {"scheme": "pbkdf2", "digest": "sha1", "iterations": 4096,
                  "salt": base64.b64encode(b"salt").decode(),
                  "hash": "SwB5AbdlSJq+rUnZJvch0GWkKcE="}),  # RFC 6070 vector 3
]


def _bcrypt_line(external_id: str, email: str, password: str, **extra: object) -> str:
    made = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return json.dumps({"external_id": external_id, "email": email, "email_verified": True,
                       "password": {"scheme": "bcrypt", "hash": made}, **extra})


async def _stored_hash(database_url: str, email: str) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchval("SELECT password_hash FROM users WHERE email = $1", email)
        return None if found is None else str(found)
    finally:
        await conn.close()


@pytest.mark.parametrize(("password", "spec"), SCHEMES,
                         ids=["firebase-scrypt", "django-pbkdf2", "django-bcrypt_sha256",
                              "passlib-pbkdf2", "pbkdf2-sha1"])
async def test_an_imported_user_signs_in_and_is_upgraded_to_argon2id(
        app: App, stub, database_url, password, spec):
    """The old system's password opens a session; the stored hash is argon2id after."""
    line = json.dumps({"external_id": "src:1", "email": "ada@example.com",
                       "password": spec})
    totals = await app.user_import.run([line])
    assert totals.created == 1

    response = await stub.SignIn(auth_pb2.SignInRequest(email="ada@example.com",
                                                        password=password))
    after = await _stored_hash(database_url, "ada@example.com")
    again = await stub.SignIn(auth_pb2.SignInRequest(email="ada@example.com",
                                                     password=password))

    assert response.access_token and again.access_token
    assert after.startswith("$argon2id$")
    assert (await app.user_import.status()).foreign == 0


async def test_a_wrong_password_is_refused_and_keeps_the_foreign_hash(app: App, stub,
                                                                      database_url):
    """A wrong password answers INVALID_CREDENTIALS, like any, and upgrades nothing."""
    await app.user_import.run([_bcrypt_line("src:1", "ada@example.com", "old password 1")])
    before = await _stored_hash(database_url, "ada@example.com")

    failure = await fails(stub.SignIn(auth_pb2.SignInRequest(
        email="ada@example.com", password="old password 2")))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INVALID_CREDENTIALS")
    assert await _stored_hash(database_url, "ada@example.com") == before
    assert (await app.user_import.status()).foreign == 1


async def test_a_disabled_imported_user_is_refused_and_not_upgraded(app: App, stub,
                                                                     database_url):
    """Imported as disabled: the right password answers INVALID_CREDENTIALS, hash kept."""
    await app.user_import.run([_bcrypt_line("src:1", "ada@example.com", "old password 1",
                                            disabled=True)])

    failure = await fails(stub.SignIn(auth_pb2.SignInRequest(
        email="ada@example.com", password="old password 1")))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INVALID_CREDENTIALS")
    assert (await _stored_hash(database_url, "ada@example.com")).startswith("$authsvc-import$")


async def test_racing_sign_ins_both_succeed_and_upgrade_once(app: App, stub, database_url):
    """Two sign-ins that both checked the foreign hash queue at the upgrade (a row lock
    the test holds is the barrier); both open sessions, and the hash is written once."""
    await app.user_import.run([_bcrypt_line("src:1", "ada@example.com", "old password 1")])
    barrier = await asyncpg.connect(database_url)
    watcher = await asyncpg.connect(database_url)
    try:
        await barrier.execute(
            "CREATE TABLE hash_writes (n int); CREATE FUNCTION count_hash_write() RETURNS"
            " trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO hash_writes VALUES (1);"
            " RETURN NEW; END $$; CREATE TRIGGER hash_writes AFTER UPDATE OF password_hash"
            " ON users FOR EACH ROW WHEN (OLD.password_hash IS DISTINCT FROM"
            " NEW.password_hash) EXECUTE FUNCTION count_hash_write()")
        lock = barrier.transaction()
        await lock.start()
        await barrier.execute("SELECT 1 FROM users WHERE email = 'ada@example.com' FOR UPDATE")
        request = auth_pb2.SignInRequest(email="ada@example.com", password="old password 1")
        racing = [asyncio.ensure_future(stub.SignIn(request)) for _ in range(2)]

        async def both_wait() -> bool:
            return await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE users SET password_hash%'"
            ) == 2

        await eventually(both_wait, 10, "both sign-ins waiting at the upgrade")
        await lock.rollback()
        answers = await asyncio.gather(*racing)
        writes = await watcher.fetchval("SELECT count(*) FROM hash_writes")
    finally:
        await barrier.close()
        await watcher.close()

    assert all(answer.access_token for answer in answers)
    assert answers[0].session_id != answers[1].session_id
    assert writes == 1
    assert (await _stored_hash(database_url, "ada@example.com")).startswith("$argon2id$")


async def test_an_imported_totp_secret_asks_for_its_code(app: App, stub, database_url):
    """A user imported with an authenticator secret gets MFA_REQUIRED, then signs in
    with that app's current code."""
    secret = bytes(range(20))
    await app.user_import.run([_bcrypt_line(
        "src:1", "ada@example.com", "old password 1",
        totp={"secret": base64.b32encode(secret).decode().rstrip("=")})])

    try:
        await stub.SignIn(auth_pb2.SignInRequest(email="ada@example.com",
                                                 password="old password 1"))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        metadata = error_metadata(error)
    else:
        raise AssertionError("no MFA_REQUIRED")
    done = await complete(stub, metadata["mfa_token"],
                          totp=totp.code(secret, await db_step(database_url)))

    assert metadata["factors"].split()[0] == "totp"
    assert done.access_token
    assert (await _stored_hash(database_url, "ada@example.com")).startswith("$argon2id$")


async def test_a_user_imported_without_a_password_cannot_sign_in_with_one(app: App, stub,
                                                                       database_url):
    """No password in the line: every password is INVALID_CREDENTIALS (a reset sets one)."""
    await app.user_import.run([json.dumps({"external_id": "src:1",
                                           "email": "ada@example.com"})])

    failure = await fails(stub.SignIn(auth_pb2.SignInRequest(
        email="ada@example.com", password="any password at all")))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INVALID_CREDENTIALS")
    assert await _stored_hash(database_url, "ada@example.com") is None


async def test_the_foreign_hash_gauge_counts_users_until_they_sign_in(app: App, stub):
    """authsvc_users_foreign_hash: imported users still on their old hash, one fewer
    after one of them signs in."""
    await app.user_import.run([_bcrypt_line(f"src:{i}", f"u{i}@example.com", "old password 1")
                               for i in range(3)])
    await app.count_foreign_hashes()
    before = REGISTRY.get_sample_value("authsvc_users_foreign_hash")

    await stub.SignIn(auth_pb2.SignInRequest(email="u1@example.com", password="old password 1"))
    await app.count_foreign_hashes()

    assert (before, REGISTRY.get_sample_value("authsvc_users_foreign_hash")) == (3, 2)


async def test_an_imported_user_is_throttled_before_the_foreign_hash_is_checked(
        settings, database_url, clock):
    """Past the free failures, even the right password is RESOURCE_EXHAUSTED
    RATE_LIMITED, and the foreign hash is neither checked nor upgraded."""
    strict = dataclasses.replace(settings, throttle_pair_free=2, throttle_base_delay=60.0)
    async with running_app(strict, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        await app.user_import.run([_bcrypt_line("src:1", "ada@example.com", "old password 1")])
        wrong = [await fails(stub.SignIn(auth_pb2.SignInRequest(
            email="ada@example.com", password="old password 2"))) for _ in range(3)]

        blocked = await fails(stub.SignIn(auth_pb2.SignInRequest(
            email="ada@example.com", password="old password 1")))

    assert [w.reason for w in wrong] == ["INVALID_CREDENTIALS"] * 3
    assert (blocked.code, blocked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                              "RATE_LIMITED")
    assert (await _stored_hash(database_url, "ada@example.com")).startswith("$authsvc-import$")
