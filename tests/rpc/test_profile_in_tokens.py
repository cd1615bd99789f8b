"""AUTHSVC_ACCESS_TOKEN_PROFILE: access tokens carry the user's profile claims, so
Validate answers a profile without the database, at one more read per sign-in and
refresh."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest

from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD
from .test_statement_budget import Ledger, cost, transactions

PHONE = "+14155550123"


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, access_token_profile=True)


@pytest.fixture
async def counted(settings, database_url, clock) -> AsyncIterator[
        tuple[Ledger, auth_pb2_grpc.AuthStub]]:
    """A server issuing profile-carrying tokens whose pool logs every statement."""
    ledger = Ledger()
    async with running_app(settings, database_url, clock, listen_for_revocations=False,
                           connection_init=ledger.attach) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await app.accounts.add("phone", PHONE, PASSWORD)
        app.revocations.load({})
        ledger.taken()
        yield ledger, auth_pb2_grpc.AuthStub(channel)


def payload(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_sign_in_and_refresh_tokens_carry_the_profile(counted):
    """With the setting on, the access tokens of a sign-in and of a refresh say the
    user's identifiers under the OIDC names, and nothing for those it has not."""
    _, stub = counted
    tokens = await stub.SignIn(auth_pb2.SignInRequest(phone=PHONE, password=PASSWORD))
    refreshed = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))

    claims = [payload(t) for t in (tokens.access_token, refreshed.access_token)]

    for found in claims:
        assert found["phone_number"] == PHONE and found["phone_number_verified"] is True
        assert not {"email", "email_verified", "preferred_username"} & set(found)


async def test_validate_answers_the_tokens_profile_without_the_database(counted):
    """Asked for the profile of a token that carries one, Validate reads nothing."""
    ledger, stub = counted
    tokens = await stub.SignIn(auth_pb2.SignInRequest(phone=PHONE, password=PASSWORD))

    async with cost(ledger) as statements:
        answer = await stub.Validate(auth_pb2.ValidateRequest(
            access_token=tokens.access_token, profile=True))

    assert statements == []
    assert (answer.phone_number, answer.phone_number_verified) == (PHONE, True)
    assert not answer.HasField("email") and not answer.HasField("preferred_username")


async def test_the_profile_costs_one_read_per_sign_in_and_refresh(counted):
    """The price of the setting: a sign-in is three transactions instead of two, a
    refresh two statements instead of one (each the user's row by its id)."""
    ledger, stub = counted
    # Statements prepared once per connection (asyncpg's type lookups) are not the price.
    await stub.SignIn(auth_pb2.SignInRequest(phone=PHONE, password=PASSWORD))

    async with cost(ledger) as signing_in:
        tokens = await stub.SignIn(auth_pb2.SignInRequest(phone=PHONE, password=PASSWORD))
    async with cost(ledger) as refreshing:
        await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))

    assert transactions(signing_in) == 3, signing_in
    assert "FROM users WHERE id = $1" in signing_in[-1]
    assert len(refreshing) == 2 and "FROM users WHERE id = $1" in refreshing[-1], refreshing
