"""SignIn: identifiers, passwords, and one answer for every failure."""

from __future__ import annotations

import grpc
import pytest

from authsvc.domain.accounts.passwords import PROFILES
from authsvc.runtime.app import App
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, fails, sign_in


async def test_sign_in_returns_an_oauth_token_response(stub, user):
    """A right password gets a Bearer access token, a refresh token and the ids."""
    response = await sign_in(stub)

    assert response.token_type == "Bearer"
    assert response.expires_in == 900
    assert response.access_token.count(".") == 2
    assert len(response.refresh_token) == 76  # base64url: version, session, counter, HMAC
    assert response.refresh_expires_in == 7 * 86400
    assert response.user_id == user
    assert response.session_id


async def test_email_is_case_insensitive(stub, user):
    """The email matches whatever its letter case."""
    response = await sign_in(stub, email="ALICE@Example.COM")

    assert response.user_id == user


async def test_phone_accepts_punctuation_and_is_stored_in_e164(stub, app: App):
    """A phone number signs in with or without spaces, dashes and parentheses."""
    user_id = await app.accounts.add("phone", "+1 (415) 555-0123", PASSWORD)

    response = await stub.SignIn(auth_pb2.SignInRequest(phone="+14155550123", password=PASSWORD))

    assert response.user_id == user_id
    assert (await app.accounts.get(user_id)).phone == "+14155550123"


async def test_username_is_case_insensitive(stub, app: App):
    """A username signs in whatever its letter case."""
    user_id = await app.accounts.add("username", "Bob.Smith", PASSWORD)

    response = await stub.SignIn(auth_pb2.SignInRequest(username="bob.SMITH", password=PASSWORD))

    assert response.user_id == user_id


@pytest.mark.parametrize("request_", [
    auth_pb2.SignInRequest(email="alice@example.com", password="wrong password"),
    auth_pb2.SignInRequest(email="nobody@example.com", password=PASSWORD),
    auth_pb2.SignInRequest(email="alice@example.com", password=PASSWORD + " "),
    auth_pb2.SignInRequest(email="alice@example.com", password=PASSWORD[:-1]),
], ids=["wrong-password", "unknown-user", "no-trimming", "no-truncation"])
async def test_every_credential_failure_gets_the_same_answer(stub, user, request_):
    """Wrong password and unknown user are indistinguishable: same code, reason, message."""
    failure = await fails(stub.SignIn(request_))

    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert failure.reason == "INVALID_CREDENTIALS"
    assert failure.message == "The identifier or password is wrong."
    assert failure.challenge == 'Bearer realm="authsvc"'


async def test_disabled_account_gets_the_same_answer_as_a_wrong_password(stub, app, user):
    """A disabled account does not reveal its state."""
    await app.accounts.disable(user)

    failure = await fails(sign_in(stub))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INVALID_CREDENTIALS")
    assert failure.message == "The identifier or password is wrong."


@pytest.mark.parametrize(("request_", "field"), [
    (auth_pb2.SignInRequest(password=PASSWORD), "identifier"),
    (auth_pb2.SignInRequest(email="", password=PASSWORD), "email"),
    (auth_pb2.SignInRequest(email="not-an-email", password=PASSWORD), "email"),
    (auth_pb2.SignInRequest(email="a\x00@example.com", password=PASSWORD), "email"),
    (auth_pb2.SignInRequest(email="a" * 250 + "@example.com", password=PASSWORD), "email"),
    (auth_pb2.SignInRequest(phone="555-0123", password=PASSWORD), "phone"),
    (auth_pb2.SignInRequest(phone="+1 415 555 0123 x", password=PASSWORD), "phone"),
    (auth_pb2.SignInRequest(username="a b", password=PASSWORD), "username"),
    (auth_pb2.SignInRequest(username="x" * 65, password=PASSWORD), "username"),
    (auth_pb2.SignInRequest(email="alice@example.com"), "password"),
    (auth_pb2.SignInRequest(email="alice@example.com", password="p" * 1025), "password"),
])
async def test_bad_input_is_invalid_argument_naming_the_field(stub, user, request_, field):
    """Malformed input is refused before the database sees it, naming the field."""
    failure = await fails(stub.SignIn(request_))

    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.reason == "INVALID_ARGUMENT"
    assert failure.fields == [field]


async def test_longest_allowed_password_signs_in(stub, app: App):
    """A 1024-character password is kept whole and works."""
    await app.accounts.add("email", "long@example.com", "p" * 1024)

    response = await sign_in(stub, email="long@example.com", password="p" * 1024)

    assert response.access_token


async def test_hash_is_upgraded_when_parameters_change(stub, app: App, database_url):
    """A hash made with older parameters is replaced on a successful sign-in."""
    import argon2

    old = argon2.PasswordHasher.from_parameters(PROFILES["test-only-cheapest"])
    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    user_id = await app.accounts.add("email", "carol@example.com", PASSWORD)
    async with app.db.connection() as conn:
        await conn.execute("UPDATE users SET password_hash = $1", weaker.hash(PASSWORD))

    await sign_in(stub, email="carol@example.com")

    async with app.db.connection() as conn:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1::uuid",
                                     user_id)
    assert not old.check_needs_rehash(stored)
    assert stored.startswith("$argon2id$")


async def test_corrupt_stored_hash_is_a_failed_sign_in_not_an_error(stub, app: App, user):
    """A damaged hash in the database answers INVALID_CREDENTIALS, never INTERNAL."""
    async with app.db.connection() as conn:
        await conn.execute("UPDATE users SET password_hash = 'garbage'")

    failure = await fails(sign_in(stub))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INVALID_CREDENTIALS")


async def test_sign_in_is_audited_without_secrets(stub, app: App, user):
    """Success and failure each leave an auth_events row; no password in it."""
    await sign_in(stub)
    await fails(sign_in(stub, password="wrong password"))

    async with app.db.connection() as conn:
        rows = await conn.fetch("SELECT kind, reason, user_id::text FROM auth_events "
                                "WHERE kind LIKE 'signin.%' ORDER BY id")
        dump = str(await conn.fetch("SELECT * FROM auth_events"))
    assert [(r["kind"], r["reason"], r["user_id"]) for r in rows] == [
        ("signin.success", None, user), ("signin.failure", "wrong_password", user)]
    assert PASSWORD not in dump and "wrong password" not in dump
