"""Two ways real OpenID Providers differ, run against the zitadel/oidc example OP
configured each way (tests/providers/zitadel.py): one puts the e-mail claims only at
its userinfo endpoint, not in the id_token (Zitadel's and Okta's default for the code
flow); one does not support RFC 9207, so its callbacks carry no ``iss`` and its
discovery does not promise one. Sign-in works with both, with the same rules."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from authsvc.config import Settings
from authsvc.runtime.app import App
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails
from ..providers.config import callback, oidc_section, write_providers
from ..providers.http import Browserless
from ..providers.zitadel import UNVERIFIED, VERIFIED, OIDCProvider, running_oidc_provider

pytestmark = [pytest.mark.go]


@pytest.fixture(scope="module")
def userinfo_only() -> Iterator[OIDCProvider]:
    """An OP whose id_token has no e-mail claims (they are at its userinfo endpoint)."""
    with running_oidc_provider(claims_in_id_token=False) as provider:
        yield provider


@pytest.fixture(scope="module")
def without_iss() -> Iterator[OIDCProvider]:
    """An OP without RFC 9207: no iss in its authorization responses."""
    with running_oidc_provider(iss_response=False) as provider:
        yield provider


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, userinfo_only: OIDCProvider,
             without_iss: OIDCProvider, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AUTHSVC_TEST_OP_SECRET", userinfo_only.client_secret)
    providers = write_providers(tmp_path / "providers.toml", *(
        oidc_section(name, provider, secret_env="AUTHSVC_TEST_OP_SECRET",
                     redirect_uris=[callback(name)])
        for name, provider in (("userinfo", userinfo_only), ("noiss", without_iss))))
    return dataclasses.replace(settings, providers_file=providers, signup="open")


async def _sign_in(stub: auth_pb2_grpc.AuthStub, name: str, provider: OIDCProvider,
                   username: str) -> auth_pb2.FinishProviderSignInResponse:
    started = await stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(provider=name))
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        provider.sign_in(started.authorization_url, username)).query))
    return await stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider=name, flow_id=started.flow_id, state=back["state"], code=back["code"],
        iss=back.get("iss", "")))


async def _email_of(database_url: str, user_id: str) -> tuple[str | None, bool]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT email, email_verified_at IS NOT NULL AS verified"
                                  " FROM users WHERE id = $1", user_id)
    finally:
        await conn.close()
    assert row is not None
    return row["email"], row["verified"]


async def test_an_email_only_at_userinfo_names_the_new_user(
        stub: auth_pb2_grpc.AuthStub, userinfo_only: OIDCProvider, database_url: str) -> None:
    """With the e-mail claims only at userinfo, the new user still gets the verified
    e-mail the provider asserts there."""
    signed_in = await _sign_in(stub, "userinfo", userinfo_only, VERIFIED.username)

    assert signed_in.created
    assert await _email_of(database_url, signed_in.user_id) == (VERIFIED.email, True)


async def test_an_unverified_email_at_userinfo_does_not_link(
        stub: auth_pb2_grpc.AuthStub, app: App, userinfo_only: OIDCProvider,
        database_url: str) -> None:
    """userinfo's email_verified=false counts as it does in an id_token: a verified
    account with that e-mail is not linked (FAILED_PRECONDITION IDENTITY_LINK_REQUIRED)."""
    user_id = await app.accounts.add("email", UNVERIFIED.email, PASSWORD)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET email_verified_at = now(), verified_at = now()"
                           " WHERE id = $1", user_id)
    finally:
        await conn.close()

    failure = await fails(_sign_in(stub, "userinfo", userinfo_only, UNVERIFIED.username))

    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                              "IDENTITY_LINK_REQUIRED")


async def test_a_provider_without_rfc_9207_signs_in_without_iss(
        stub: auth_pb2_grpc.AuthStub, without_iss: OIDCProvider) -> None:
    """A provider that does not advertise authorization_response_iss_parameter_supported
    sends no iss, and the sign-in succeeds without one (the id_token's iss is still
    checked)."""
    discovery = Browserless().get(without_iss.issuer + "/.well-known/openid-configuration")
    assert "authorization_response_iss_parameter_supported" not in json.loads(discovery.body)

    first = await _sign_in(stub, "noiss", without_iss, VERIFIED.username)
    again = await _sign_in(stub, "noiss", without_iss, VERIFIED.username)

    assert (first.created, again.created, again.user_id) == (True, False, first.user_id)
