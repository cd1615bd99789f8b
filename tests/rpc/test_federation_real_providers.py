"""Sign-in with another identity provider against real providers on this machine, over
gRPC (the native-app path: Start returns the URL, Finish takes what the callback got):
the zitadel/oidc example OpenID Provider, whose login form is filled over HTTP, and
the GitHub-shape OAuth 2.0 provider (tests/providers).

A first sign-in creates the user, the next finds it by the provider's subject; an
account whose e-mail the provider asserts verified, and which is verified here too,
is linked; an unverified assertion never links; the GitHub shape keys its users by
its numeric id and reads the verified e-mail from its e-mail list.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path

import asyncpg
import grpc
import pytest

from authsvc.config import Settings
from authsvc.runtime.app import App
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails
from ..providers.config import callback, github_section, oidc_section, write_providers
from ..providers.github import OCTO_UNVERIFIED, OCTO_VERIFIED, GitHubProvider
from ..providers.zitadel import UNVERIFIED, VERIFIED, OIDCProvider

pytestmark = [pytest.mark.go]


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, oidc_provider: OIDCProvider,
             github_provider: GitHubProvider, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The suite's settings with both providers configured and sign-up open."""
    monkeypatch.setenv("AUTHSVC_TEST_OP_SECRET", oidc_provider.client_secret)
    monkeypatch.setenv("AUTHSVC_TEST_GH_SECRET", github_provider.client_secret)
    providers = write_providers(
        tmp_path / "providers.toml",
        oidc_section("op", oidc_provider, secret_env="AUTHSVC_TEST_OP_SECRET",
                     redirect_uris=[callback("op")]),
        github_section("github", github_provider, secret_env="AUTHSVC_TEST_GH_SECRET",
                       redirect_uris=[callback("github")]))
    return dataclasses.replace(settings, providers_file=providers, signup="open")


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


async def _through_op(stub: auth_pb2_grpc.AuthStub, provider: OIDCProvider,
                      username: str) -> auth_pb2.FinishProviderSignInResponse:
    started = await stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(provider="op"))
    back = _query(provider.sign_in(started.authorization_url, username))
    return await stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="op", flow_id=started.flow_id, state=back["state"], code=back["code"],
        iss=back.get("iss", "")))


async def _through_github(stub: auth_pb2_grpc.AuthStub, provider: GitHubProvider,
                          login: str) -> auth_pb2.FinishProviderSignInResponse:
    started = await stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(
        provider="github"))
    back = _query(provider.sign_in(started.authorization_url, login))
    return await stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="github", flow_id=started.flow_id, state=back["state"], code=back["code"]))


async def _verified_account(app: App, database_url: str, email: str) -> str:
    """An account with ``email``, proven (as an operator who created it with it)."""
    user_id = await app.accounts.add("email", email, PASSWORD)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET email_verified_at = now(), verified_at = now()"
                           " WHERE id = $1", user_id)
    finally:
        await conn.close()
    return user_id


async def test_zitadel_op_creates_the_user_then_finds_it_by_subject(
        stub: auth_pb2_grpc.AuthStub, oidc_provider: OIDCProvider, database_url: str) -> None:
    """The first sign-in through the real OP creates a user; the second, a new flow and a
    new login at the provider, signs the same user in (the provider's sub is the key)."""
    first = await _through_op(stub, oidc_provider, VERIFIED.username)
    again = await _through_op(stub, oidc_provider, VERIFIED.username)

    assert (first.created, again.created) == (True, False)
    assert again.user_id == first.user_id and first.access_token and again.refresh_token
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT provider, subject, user_id::text FROM identities")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("op", VERIFIED.subject, first.user_id)]


async def test_zitadel_op_links_a_verified_email_to_a_verified_account(
        stub: auth_pb2_grpc.AuthStub, app: App, oidc_provider: OIDCProvider,
        database_url: str) -> None:
    """The OP asserts a verified e-mail that a verified account here has: that account
    is signed in (linked), not a new one."""
    user_id = await _verified_account(app, database_url, VERIFIED.email)

    signed_in = await _through_op(stub, oidc_provider, VERIFIED.username)

    assert (signed_in.user_id, signed_in.created) == (user_id, False)


async def test_zitadel_op_unverified_email_never_links(
        stub: auth_pb2_grpc.AuthStub, app: App, oidc_provider: OIDCProvider,
        database_url: str) -> None:
    """The OP's user with an unverified e-mail that a verified account here has is
    refused FAILED_PRECONDITION IDENTITY_LINK_REQUIRED, and nothing is linked."""
    await _verified_account(app, database_url, UNVERIFIED.email)

    failure = await fails(_through_op(stub, oidc_provider, UNVERIFIED.username))

    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                              "IDENTITY_LINK_REQUIRED")
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM identities") == 0
    finally:
        await conn.close()


async def test_zitadel_op_code_is_spent_once(
        stub: auth_pb2_grpc.AuthStub, oidc_provider: OIDCProvider) -> None:
    """The same callback (state, code, iss) finished twice: the second is refused
    UNAUTHENTICATED FEDERATION_FLOW_INVALID (the flow is spent)."""
    started = await stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(provider="op"))
    back = _query(oidc_provider.sign_in(started.authorization_url, VERIFIED.username))
    finish = auth_pb2.FinishProviderSignInRequest(
        provider="op", flow_id=started.flow_id, state=back["state"], code=back["code"],
        iss=back["iss"])
    await stub.FinishProviderSignIn(finish)

    failure = await fails(stub.FinishProviderSignIn(finish))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")


async def test_zitadel_op_second_issuer_in_the_callback_is_a_mix_up(
        stub: auth_pb2_grpc.AuthStub, oidc_provider: OIDCProvider,
        second_oidc_provider: OIDCProvider) -> None:
    """A callback that carries another provider's iss (RFC 9207) is refused
    UNAUTHENTICATED FEDERATION_FLOW_INVALID before any code is redeemed."""
    started = await stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(provider="op"))
    back = _query(oidc_provider.sign_in(started.authorization_url, VERIFIED.username))

    failure = await fails(stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="op", flow_id=started.flow_id, state=back["state"], code=back["code"],
        iss=second_oidc_provider.issuer)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")


async def test_github_shape_signs_in_by_numeric_id_and_verified_email(
        stub: auth_pb2_grpc.AuthStub, github_provider: GitHubProvider) -> None:
    """The GitHub shape: a first sign-in creates the user (its verified primary e-mail
    from /user/emails), the next finds it by GitHub's numeric id."""
    first = await _through_github(stub, github_provider, OCTO_VERIFIED.login)
    again = await _through_github(stub, github_provider, OCTO_VERIFIED.login)

    assert (first.created, again.created, again.user_id) == (True, False, first.user_id)
    assert github_provider.requests["/user/emails"] == 2


async def test_github_shape_unverified_email_never_links(
        stub: auth_pb2_grpc.AuthStub, app: App, github_provider: GitHubProvider,
        database_url: str) -> None:
    """A GitHub-shape user whose only e-mail is unverified, that a verified account here
    has, is refused IDENTITY_LINK_REQUIRED."""
    await _verified_account(app, database_url, OCTO_UNVERIFIED.emails[0][0])

    failure = await fails(_through_github(stub, github_provider, OCTO_UNVERIFIED.login))

    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                              "IDENTITY_LINK_REQUIRED")
