"""A provider sign-in's flow lives in its sealed ``state`` until the callback arrives:
StartProviderSignIn (public) writes nothing; FinishProviderSignIn opens the state,
refuses one this service did not seal (altered, forged, spelled another way), and
spends it once, by the database's clock. The provider is tests/providers/rogue.py
(real HTTP, grants at once); most cases here never reach it, as the flow is judged
before the code is exchanged."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import urllib.parse
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest

from authsvc.config import Settings
from authsvc.domain.federation.state import MAX_STATE, SealedFlows
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import bearer, fails, sign_in, travel
from ..providers.config import callback, oidc_section, section, write_providers
from ..providers.rogue import RogueProvider

APP = "https://app.example"
TTL = 600


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, rogue_provider: RogueProvider,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AUTHSVC_TEST_STATE_SECRET", rogue_provider.client_secret)
    providers = write_providers(
        tmp_path / "providers.toml",
        oidc_section("rogue", rogue_provider, secret_env="AUTHSVC_TEST_STATE_SECRET",
                     redirect_uris=[callback("rogue")]),
        section("plain", authorize_url="https://plain.example/authorize",
                token_url="https://plain.example/token",
                userinfo_url="https://plain.example/user", client_id="authsvc",
                client_secret_env="AUTHSVC_TEST_STATE_SECRET",
                redirect_uris=[callback("plain")]))
    return dataclasses.replace(settings, providers_file=providers, signup="open",
                               redirect_origins=(APP,), federation_flow_ttl=TTL)


async def _start(stub: auth_pb2_grpc.AuthStub, provider: str = "plain",
                 **fields: str) -> auth_pb2.StartProviderSignInResponse:
    started: auth_pb2.StartProviderSignInResponse = await stub.StartProviderSignIn(
        auth_pb2.StartProviderSignInRequest(provider=provider, **fields))
    return started


def _denied(started: auth_pb2.StartProviderSignInResponse, provider: str = "plain",
            **change: str) -> auth_pb2.FinishProviderSignInRequest:
    """The callback of a person who declined at the provider: it spends the flow and
    is then refused as the provider's error, without a call to the provider."""
    fields = {"provider": provider, "flow_id": started.flow_id, "state": started.state,
              "error": "access_denied"}
    return auth_pb2.FinishProviderSignInRequest(**{**fields, **change})


async def _counts(database_url: str) -> dict[str, int]:
    """The rows of every table."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                  " ORDER BY tablename")
        return {t["tablename"]: int(await conn.fetchval(
            f'SELECT count(*) FROM "{t["tablename"]}"'))  # noqa: S608 (catalog names)
            for t in tables}
    finally:
        await conn.close()


async def _spent(database_url: str) -> int:
    return (await _counts(database_url))["federation_spent_flows"]


async def test_starting_sign_ins_writes_nothing(stub, user, database_url):
    """StartProviderSignIn is public: 200 calls (with and without a redirect_to or an
    app's PKCE challenge, at a provider with discovery and one without) and LinkIdentity
    leave every table as it was."""
    token = (await sign_in(stub)).access_token
    before = await _counts(database_url)
    challenge = base64.urlsafe_b64encode(b"\x01" * 32).decode().rstrip("=")
    for i in range(50):
        await _start(stub, "plain")
        await _start(stub, "rogue")
        await _start(stub, "plain", redirect_to=f"{APP}/after/{i}")
        await _start(stub, "plain", code_challenge=challenge)
    await stub.LinkIdentity(auth_pb2.LinkIdentityRequest(provider="plain"),
                            metadata=bearer(token))

    assert await _counts(database_url) == before


async def test_a_state_is_short_and_carries_no_readable_secret(stub):
    """A flow without redirect_to is a state of under 200 URL-safe characters (the
    gateway takes the first 16 for its cookie's name, so those differ per flow); the
    nonce and the PKCE verifier are not in it in the clear."""
    first, second = await _start(stub, "rogue"), await _start(stub, "rogue")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        first.authorization_url).query))

    assert len(first.state) < 200
    assert first.state[:16] != second.state[:16]
    assert query["state"] == first.state
    raw = base64.urlsafe_b64decode(first.state + "=" * (-len(first.state) % 4))
    nonce = base64.urlsafe_b64decode(query["nonce"] + "=" * (-len(query["nonce"]) % 4))
    assert nonce not in raw
    assert first.flow_id not in first.state


async def test_a_declined_callback_spends_the_flow_once(stub, database_url):
    """The control for the cases below: a callback of the flow's own starter is judged
    (here the provider's error) and its state is spent: one row, and the same callback
    again is FEDERATION_FLOW_INVALID."""
    started = await _start(stub)
    first = await fails(stub.FinishProviderSignIn(_denied(started)))
    again = await fails(stub.FinishProviderSignIn(_denied(started)))

    assert (first.code, first.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                          "PROVIDER_RESPONSE_INVALID")
    assert (again.code, again.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                          "FEDERATION_FLOW_INVALID")
    assert await _spent(database_url) == 1


@pytest.mark.parametrize("alter", ["byte", "truncated", "forged", "spelling"])
async def test_a_state_not_sealed_here_is_refused_before_the_database(stub, database_url,
                                                                       clock, alter):
    """A state with a byte changed, cut short, sealed under another key, or the issued
    state spelled another way (unused base64 bits set, so it would hash differently):
    FEDERATION_FLOW_INVALID, nothing written (no spent row, no audit row)."""
    started = await _start(stub)
    state = started.state
    if alter == "byte":
        state = state[:40] + ("A" if state[40] != "A" else "B") + state[41:]
    elif alter == "truncated":
        state = state[:-4]
    elif alter == "forged":
        state, _ = SealedFlows(os.urandom(32), clock, TTL).start(
            provider="plain", binding_hash=hashlib.sha256(started.flow_id.encode()).digest(),
            app_challenge=None, redirect_uri_index=0, redirect_to=None, link_user_id=None)
    else:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        assert len(state) % 4 in (2, 3), "the state's length leaves unused bits"
        state = state[:-1] + alphabet[alphabet.index(state[-1]) ^ 1]
        assert base64.urlsafe_b64decode(state + "=" * (-len(state) % 4)) == \
            base64.urlsafe_b64decode(started.state + "=" * (-len(started.state) % 4))
    before = await _counts(database_url)

    failure = await fails(stub.FinishProviderSignIn(_denied(started, state=state)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")
    assert await _counts(database_url) == before
    assert (await fails(stub.FinishProviderSignIn(_denied(started)))).reason == \
        "PROVIDER_RESPONSE_INVALID"  # the real state is still unspent


async def test_an_overlong_state_is_invalid_argument(stub):
    failure = await fails(stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="plain", flow_id="f", state="A" * (MAX_STATE + 1), error="x")))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["state"])


async def test_the_longest_redirect_to_fits_in_a_state_finish_reads(stub):
    """redirect_to travels in the state: at its longest (2048 characters) the state is
    still one Finish accepts, and the flow finishes with it."""
    target = f"{APP}/" + "a" * (2048 - len(APP) - 1)
    started = await _start(stub, redirect_to=target)

    assert len(started.state) <= MAX_STATE
    failure = await fails(stub.FinishProviderSignIn(_denied(started)))
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_a_redirect_to_of_more_than_2048_bytes_is_invalid_argument(stub):
    """The limit is in UTF-8 bytes (what the state carries), not characters."""
    target = f"{APP}/" + "é" * (2048 - len(APP) - 1)

    failure = await fails(_start(stub, redirect_to=target))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT,
                                              ["redirect_to"])


async def test_an_expired_state_is_refused_by_the_databases_clock(stub, clock, database_url):
    """A flow started longer ago than its lifetime (by the starting server's clock,
    carried in the state) is refused by the database's clock when it is spent, with no
    row of its own needed; one a minute short of it is not."""
    clock.advance(-TTL - 1)
    expired = await _start(stub)
    clock.advance(61)
    live = await _start(stub)
    clock.advance(TTL - 60)

    failure = await fails(stub.FinishProviderSignIn(_denied(expired)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")
    assert (await fails(stub.FinishProviderSignIn(_denied(live)))).reason == \
        "PROVIDER_RESPONSE_INVALID"
    assert await _spent(database_url) == 1


async def test_housekeeping_forgets_spent_flows_after_their_expiry(app, stub, database_url,
                                                                   clock):
    """A spent flow's row is kept while the flow could still be replayed, and pruned once
    it has expired by the database's clock (its expiry alone refuses it then)."""
    started = await _start(stub)
    await fails(stub.FinishProviderSignIn(_denied(started)))

    assert await app.federation.forget_expired() == 0
    assert await _spent(database_url) == 1
    await travel(database_url, TTL + 1, clock)
    assert await app.federation.forget_expired() == 1
    assert await _spent(database_url) == 0


async def test_a_link_flow_whose_user_was_deleted_is_refused(stub, user, database_url,
                                                             rogue_provider):
    """The flow's user travels in the state; deleted between start and callback, the
    callback is FEDERATION_FLOW_INVALID and links nothing."""
    token = (await sign_in(stub)).access_token
    started = await stub.LinkIdentity(auth_pb2.LinkIdentityRequest(provider="rogue"),
                                      metadata=bearer(token))
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        rogue_provider.authorize(started.authorization_url)).query))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user))
    finally:
        await conn.close()

    failure = await fails(stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="rogue", flow_id=started.flow_id, state=back["state"], code=back["code"],
        iss=back.get("iss", ""))))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")
    assert (await _counts(database_url))["identities"] == 0
