"""Profile claims: Validate answers the user's identifiers under the OpenID Connect
standard names when the request asks (``profile``), each absent when the user has
none; access tokens carry none by default."""

from __future__ import annotations

import uuid

import asyncpg
import jwt
import pytest

from authsvc.core.tokens import PROFILE_CLAIMS
from authsvc.store import users as user_rows
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, bearer

PHONE = "+14155550123"


async def signed_in(app, stub, kind: str, value: str) -> auth_pb2.SignInResponse:
    """A new user named by ``value`` in ``kind``, signed in with its password."""
    await app.accounts.add(kind, value, PASSWORD)
    return await stub.SignIn(auth_pb2.SignInRequest(password=PASSWORD, **{kind: value}))


def present(response: auth_pb2.ValidateResponse) -> dict[str, object]:
    """The profile fields the answer has (proto3 optional: set or absent)."""
    return {name: getattr(response, name) for name in PROFILE_CLAIMS
            if response.HasField(name)}


async def validate(stub, token: str, *, profile: bool) -> auth_pb2.ValidateResponse:
    return await stub.Validate(auth_pb2.ValidateRequest(access_token=token, profile=profile))


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("email", "alice@example.com", {"email": "alice@example.com", "email_verified": True}),
    ("phone", PHONE, {"phone_number": PHONE, "phone_number_verified": True}),
    ("username", "bob", {"preferred_username": "bob"}),
], ids=["email", "phone", "username"])
async def test_validate_with_profile_answers_the_users_identifiers(app, stub, kind, value,
                                                                  expected):
    """Asked for the profile, Validate answers the user's identifier and its verified
    flag under the OIDC names, and nothing for identifiers the user has not."""
    tokens = await signed_in(app, stub, kind, value)

    answer = await validate(stub, tokens.access_token, profile=True)

    assert present(answer) == expected
    assert answer.user_id == tokens.user_id


async def test_validate_without_profile_answers_no_profile(app, stub):
    """Without ``profile`` the answer has no profile field at all (absent, not empty)."""
    tokens = await signed_in(app, stub, "email", "alice@example.com")

    answer = await validate(stub, tokens.access_token, profile=False)

    assert present(answer) == {}


async def test_an_identifier_not_proven_answers_verified_false(app, stub):
    """email_verified is the email's own proof: present and false without it."""
    tokens = await signed_in(app, stub, "email", "alice@example.com")
    async with app.db.connection() as conn:
        await conn.execute("UPDATE users SET email_verified_at = NULL WHERE id = $1",
                           uuid.UUID(tokens.user_id))

    answer = await validate(stub, tokens.access_token, profile=True)

    assert present(answer) == {"email": "alice@example.com", "email_verified": False}


async def test_a_user_with_several_identifiers_answers_each(app, stub):
    """A user with an email, a phone and a username answers all five claims, each
    verified flag its own identifier's: a phone number added without a proof is not
    verified however proven the email is, until a code sent to it is redeemed."""
    tokens = await signed_in(app, stub, "email", "carol@example.com")
    async with app.db.connection() as conn:
        await conn.execute("UPDATE users SET phone = $2, username = 'carol' WHERE id = $1",
                           uuid.UUID(tokens.user_id), PHONE)

    before = await validate(stub, tokens.access_token, profile=True)
    async with app.db.connection() as conn:
        await user_rows.mark_verified(conn, tokens.user_id, "phone")
    after = await validate(stub, tokens.access_token, profile=True)

    assert present(before) == {
        "email": "carol@example.com", "email_verified": True, "phone_number": PHONE,
        "phone_number_verified": False, "preferred_username": "carol"}
    assert present(after) == {
        "email": "carol@example.com", "email_verified": True, "phone_number": PHONE,
        "phone_number_verified": True, "preferred_username": "carol"}


async def test_a_verified_flag_cannot_outlive_its_identifier(app, stub):
    """The schema refuses a proof without its identifier: whoever clears or changes
    an identifier must clear its flag with it."""
    tokens = await signed_in(app, stub, "email", "erin@example.com")
    async with app.db.connection() as conn:
        await conn.execute("UPDATE users SET phone = $2 WHERE id = $1",
                           uuid.UUID(tokens.user_id), PHONE)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE users SET email = NULL WHERE id = $1",
                               uuid.UUID(tokens.user_id))


async def test_profile_of_the_bearer_in_metadata(app, stub):
    """The profile is the bearer's when the token comes in the metadata."""
    tokens = await signed_in(app, stub, "username", "dave")

    answer = await stub.Validate(auth_pb2.ValidateRequest(profile=True),
                                 metadata=bearer(tokens.access_token))

    assert present(answer) == {"preferred_username": "dave"}


async def test_access_tokens_carry_no_profile_by_default(app, stub):
    """Tokens travel, so by default neither a sign-in's nor a refresh's access token
    says the user's identifiers."""
    tokens = await signed_in(app, stub, "email", "alice@example.com")
    refreshed = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))

    payloads = [jwt.decode(t, options={"verify_signature": False})
                for t in (tokens.access_token, refreshed.access_token)]

    assert [sorted(set(p) & set(PROFILE_CLAIMS)) for p in payloads] == [[], []]
