"""Sign-in with another identity provider, over real gRPC against providers on real
HTTP ports (tests/providers/rogue.py: discovery, JWKS, RS256 id_tokens, single-use
codes bound to PKCE; tests/providers/github.py: GitHub's OAuth 2.0 shape), including
the attacks: state missing, mismatched or replayed,
a code or nonce replayed, iss mix-up, forged id_tokens, linking on an unverified
e-mail, a foreign redirect, unlinking the last way in, a provider down or slow."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.domain.factors import totp
from authsvc.store import users as user_rows
from authsvc.v1 import auth_pb2
from tests.helpers import PASSWORD, bearer, fails, sign_in
from tests.providers.config import callback, github_section, oidc_section, write_providers
from tests.providers.github import OCTO_VERIFIED, GitHubProvider
from tests.providers.http import query_of
from tests.providers.rogue import RogueProvider, RogueUser, running_rogue_provider, spare_key
from tests.rpc.test_factors import enable_totp, error_metadata

APP = "https://app.example"


ALICE = RogueUser("alice-sub", "alice@example.com", True)
Provider = RogueProvider | GitHubProvider


@pytest.fixture
def idp() -> Iterator[RogueProvider]:
    """The OpenID provider ``idp``: its signed-in user is ALICE (the ``user``
    fixture's e-mail)."""
    with running_rogue_provider(ALICE) as provider:
        yield provider


@pytest.fixture
def other_idp() -> Iterator[RogueProvider]:
    """A second OpenID provider (its own issuer, key, client id and secret)."""
    with running_rogue_provider(ALICE, client_id="authsvc-2", client_secret="second-secret",
                                key=spare_key()) as provider:
        yield provider


@pytest.fixture
def github(github_provider: GitHubProvider) -> GitHubProvider:
    """The GitHub-shape OAuth 2.0 provider; OCTO_VERIFIED signs in there."""
    return github_provider


def provider_sections(tmp_path, idp: RogueProvider, other: RogueProvider,
                      github: GitHubProvider, trust_acr: tuple[str, ...] = ()) -> list[str]:
    """The sections of ``idp``, ``other`` (client_secret_post) and ``github``, each
    client secret in a file."""
    secrets = {}
    for name, provider in (("idp", idp), ("other", other), ("github", github)):
        path = tmp_path / f"{name}.secret"
        path.write_text(provider.client_secret + "\n")
        secrets[name] = path
    return [
        oidc_section("idp", idp, secret_file=secrets["idp"],
                     redirect_uris=[callback("idp"), "com.example.app:/callback"],
                     trust_acr=trust_acr),
        oidc_section("other", other, secret_file=secrets["other"],
                     redirect_uris=[callback("other")], client_auth="client_secret_post"),
        github_section("github", github, secret_file=secrets["github"],
                       redirect_uris=[callback("github")])]


@pytest.fixture
def provider_settings(settings, tmp_path, idp, other_idp, github) -> dict[str, Any]:
    path = write_providers(tmp_path / "providers.toml",
                           *provider_sections(tmp_path, idp, other_idp, github))
    return {"providers_file": path, "signup": "open", "redirect_origins": (APP,),
            "provider_timeout": 2.0}


@pytest.fixture
def settings(settings, provider_settings):
    return dataclasses.replace(settings, **provider_settings)


@dataclasses.dataclass
class Callback:
    started: auth_pb2.StartProviderSignInResponse
    params: dict[str, str]

    def finish(self, provider: str = "idp", **change: str) -> auth_pb2.FinishProviderSignInRequest:
        fields = {"provider": provider, "flow_id": self.started.flow_id,
                  "state": self.params.get("state", ""), "code": self.params.get("code", ""),
                  "iss": self.params.get("iss", "")}
        return auth_pb2.FinishProviderSignInRequest(**{**fields, **change})


def authorize(idp: Provider, authorization_url: str) -> dict[str, str]:
    """The provider's user signs in at ``authorization_url`` (the OpenID provider's
    user is signed in already; at the GitHub-shape one OCTO_VERIFIED fills its
    form): the parameters of the redirect back to the callback."""
    if isinstance(idp, GitHubProvider):
        return query_of(idp.sign_in(authorization_url, OCTO_VERIFIED.login))
    return query_of(idp.authorize(authorization_url))


async def visit(stub, idp: Provider, provider: str = "idp",
                **start: str) -> Callback:
    """Start a flow and let the provider's user sign in: what the callback receives."""
    started = await stub.StartProviderSignIn(
        auth_pb2.StartProviderSignInRequest(provider=provider, **start))
    params = await asyncio.to_thread(authorize, idp, started.authorization_url)
    return Callback(started, params)


async def provider_sign_in(stub, idp: Provider, provider: str = "idp",
                           ) -> auth_pb2.FinishProviderSignInResponse:
    callback = await visit(stub, idp, provider)
    answer: auth_pb2.FinishProviderSignInResponse = await stub.FinishProviderSignIn(
        callback.finish(provider))
    return answer


def claims_of(access_token: str) -> dict[str, Any]:
    return jwt.decode(access_token, options={"verify_signature": False})


async def verify_email(database_url: str, email: str, verified: bool = True) -> None:
    """Set (or clear) the proof of an account's e-mail, as a code would (or as an
    unverified sign-up leaves it)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET email_verified_at = CASE WHEN $2 THEN now() END"
                           " WHERE email = $1", email, verified)
    finally:
        await conn.close()


async def audit_kinds(database_url: str) -> list[tuple[str, str | None]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT kind, reason FROM auth_events ORDER BY id")
        return [(row["kind"], row["reason"]) for row in rows]
    finally:
        await conn.close()


# --- the happy paths ---------------------------------------------------------------

async def test_a_first_sign_in_creates_a_user_without_a_password(stub, idp, database_url):
    """A new identity (sign-up open) creates a user with the provider's verified e-mail
    and answers SignIn's tokens, amr fed; the sign-in and the link are audited."""
    answer = await provider_sign_in(stub, idp)
    assert answer.created and answer.token_type == "Bearer" and answer.refresh_token
    assert claims_of(answer.access_token)["amr"] == ["fed"]
    found = await stub.ListIdentities(auth_pb2.ListIdentitiesRequest(),
                                      metadata=bearer(answer.access_token))
    assert [(i.provider, i.subject, i.email) for i in found.identities] == [
        ("idp", "alice-sub", "alice@example.com")]
    kinds = await audit_kinds(database_url)
    assert ("identity.linked", "idp:signup") in kinds
    assert ("signin.success", "provider:idp") in kinds
    wrong = await fails(sign_in(stub, "alice@example.com", PASSWORD))
    assert wrong.reason == "INVALID_CREDENTIALS"  # no password was set


async def test_a_returning_identity_signs_in_the_same_user(stub, idp):
    """The provider's subject is the key: the second sign-in is the same user, even
    after the provider changed the e-mail."""
    first = await provider_sign_in(stub, idp)
    idp.user = RogueUser("alice-sub", "alice.new@example.com", True)
    again = await provider_sign_in(stub, idp)
    assert (again.user_id, again.created) == (first.user_id, False)
    assert again.session_id != first.session_id


async def test_the_refresh_token_of_a_federated_session_works(stub, idp):
    """The session is an ordinary one: its refresh token rotates."""
    answer = await provider_sign_in(stub, idp)
    refreshed = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=answer.refresh_token))
    assert refreshed.session_id == answer.session_id


async def test_a_github_shaped_provider_signs_in_by_its_numeric_id(stub, github):
    """Plain OAuth 2.0: the subject from /user's id (a number, as a string), the e-mail
    from the primary, verified entry of /user/emails."""
    answer = await provider_sign_in(stub, github, "github")
    found = await stub.ListIdentities(auth_pb2.ListIdentitiesRequest(),
                                      metadata=bearer(answer.access_token))
    assert [(i.provider, i.subject, i.email) for i in found.identities] == [
        ("github", OCTO_VERIFIED.subject, "octo@gh.example")]


async def test_a_native_app_brings_its_own_pkce_verifier(stub, idp):
    """With a code_challenge at Start, Finish needs the matching code_verifier."""
    verifier = base64.urlsafe_b64encode(b"v" * 40).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    callback = await visit(stub, idp, code_challenge=challenge,
                           redirect_uri="com.example.app:/callback")
    answer = await stub.FinishProviderSignIn(callback.finish(code_verifier=verifier))
    assert answer.access_token

    callback = await visit(stub, idp, code_challenge=challenge,
                           redirect_uri="com.example.app:/callback")
    wrong = await fails(stub.FinishProviderSignIn(
        callback.finish(code_verifier=verifier[:-1] + "x")))
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                          "FEDERATION_FLOW_INVALID")


async def test_the_redirect_after_sign_in_is_the_allowed_one_asked_for(stub, idp):
    """redirect_to on an allowed origin comes back from Finish."""
    callback = await visit(stub, idp, redirect_to=f"{APP}/home?tab=1")
    answer = await stub.FinishProviderSignIn(callback.finish())
    assert answer.redirect_to == f"{APP}/home?tab=1"


# --- the flow's state ---------------------------------------------------------------

async def test_a_missing_state_is_invalid_argument(stub, idp):
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(callback.finish(state="")))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["state"])


async def test_a_state_of_no_flow_is_refused(stub, idp):
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(callback.finish(state="x" * 43)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")


async def test_a_state_with_another_browsers_flow_id_is_refused_and_spent(stub, idp):
    """Login CSRF: a victim's browser (another flow_id) bringing the attacker's state
    and code is refused, and the flow is spent: the right flow_id cannot use it later."""
    callback = await visit(stub, idp)
    mine = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(
        callback.finish(flow_id=mine.started.flow_id)))
    assert failure.reason == "FEDERATION_FLOW_INVALID"
    again = await fails(stub.FinishProviderSignIn(callback.finish()))
    assert again.reason == "FEDERATION_FLOW_INVALID"


async def test_a_replayed_callback_is_refused(stub, idp):
    """The flow is single use: the same callback a second time finds nothing."""
    callback = await visit(stub, idp)
    await stub.FinishProviderSignIn(callback.finish())
    failure = await fails(stub.FinishProviderSignIn(callback.finish()))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")


async def test_concurrent_callbacks_of_one_flow_sign_in_once(stub, idp):
    """Two tabs finishing the same flow at once: one session, one refusal."""
    callback = await visit(stub, idp)
    results = await asyncio.gather(*(stub.FinishProviderSignIn(callback.finish())
                                     for _ in range(3)), return_exceptions=True)
    assert sum(isinstance(r, auth_pb2.FinishProviderSignInResponse) for r in results) == 1
    assert all(r.code() == grpc.StatusCode.UNAUTHENTICATED
               for r in results if isinstance(r, grpc.RpcError))


async def test_an_expired_flow_is_refused(stub, idp, clock):
    """The flow's lifetime (from the starting server's clock, carried in the state) is
    judged by the database's clock."""
    clock.advance(-601)  # the flow was started 601 s ago
    callback = await visit(stub, idp)
    clock.advance(601)
    failure = await fails(stub.FinishProviderSignIn(callback.finish()))
    assert failure.reason == "FEDERATION_FLOW_INVALID"


async def test_a_callback_for_another_provider_is_refused(stub, idp):
    """The callback's provider must be the flow's."""
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(callback.finish(provider="other")))
    assert failure.reason == "FEDERATION_FLOW_INVALID"


async def test_a_replayed_code_is_refused_by_the_provider(stub, idp):
    """A code already exchanged, brought with a new flow: the provider refuses it."""
    first = await visit(stub, idp)
    await stub.FinishProviderSignIn(first.finish())
    second = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(second.finish(code=first.params["code"])))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "PROVIDER_RESPONSE_INVALID")


async def test_a_providers_error_answer_is_refused(stub, idp):
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(
        callback.finish(code="", error="access_denied")))
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


# --- mix-up (RFC 9207) -------------------------------------------------------------

async def test_an_iss_of_another_provider_is_refused(stub, idp, other_idp):
    """Mix-up: a callback whose iss is a second provider's is refused."""
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(callback.finish(iss=other_idp.issuer)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "FEDERATION_FLOW_INVALID")


async def test_a_missing_iss_is_refused_when_the_provider_advertises_it(stub, idp):
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(callback.finish(iss="")))
    assert failure.reason == "FEDERATION_FLOW_INVALID"


async def test_a_second_providers_code_and_state_are_refused(stub, idp, other_idp):
    """Mix-up the other way: the other provider's code brought to this flow fails
    (its iss, or else the code exchange at the wrong provider)."""
    mine = await visit(stub, idp)
    theirs = await visit(stub, other_idp, "other")
    failure = await fails(stub.FinishProviderSignIn(
        mine.finish(code=theirs.params["code"], iss=theirs.params["iss"])))
    assert failure.reason == "FEDERATION_FLOW_INVALID"


# --- forged id_tokens --------------------------------------------------------------

async def forged(stub, idp: RogueProvider, **bend: Any) -> Any:
    """A flow whose id_token the provider's token endpoint issues bent by ``bend``
    (RogueProvider's knobs: alg, claims, signing_kid)."""
    for knob, value in bend.items():
        setattr(idp, knob, value)
    callback = await visit(stub, idp)
    return await fails(stub.FinishProviderSignIn(callback.finish()))


async def test_an_unsigned_id_token_is_refused(stub, idp):
    """alg none."""
    failure = await forged(stub, idp, alg="none")
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "PROVIDER_RESPONSE_INVALID")


async def test_an_id_token_signed_with_the_public_key_as_hmac_secret_is_refused(stub, idp):
    """Key confusion: HS256 keyed with the provider's public key (its PEM), under its kid."""
    failure = await forged(stub, idp, alg="HS256-public-key")
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_an_id_token_for_another_audience_is_refused(stub, idp):
    failure = await forged(stub, idp, claims={"aud": "someone-else"})
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_several_audiences_need_azp_naming_authsvc(stub, idp):
    failure = await forged(stub, idp, claims={"aud": [idp.client_id, "someone-else"],
                                              "azp": "someone-else"})
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_an_id_token_of_another_issuer_is_refused(stub, idp, other_idp):
    failure = await forged(stub, idp, claims={"iss": other_idp.issuer})
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_an_expired_id_token_is_refused(stub, idp):
    now = int(time.time())
    failure = await forged(stub, idp, claims={"iat": now - 7200, "exp": now - 3600})
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_an_id_token_issued_in_the_future_is_refused(stub, idp):
    now = int(time.time())
    failure = await forged(stub, idp, claims={"iat": now + 3600, "exp": now + 3900})
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_a_replayed_nonce_is_refused(stub, idp):
    """An id_token from an earlier flow (its nonce) in a new flow."""
    earlier = await visit(stub, idp)
    old_nonce = query_of(earlier.started.authorization_url)["nonce"]
    failure = await forged(stub, idp, claims={"nonce": old_nonce})
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_an_id_token_signed_by_an_unknown_key_is_refused(stub, idp):
    """A key the provider does not publish (a kid it does not have, or its kid)."""
    failure = await forged(stub, idp, alg="unknown-key", signing_kid="stranger")
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"
    failure = await forged(stub, idp, alg="unknown-key", signing_kid=None)
    assert failure.reason == "PROVIDER_RESPONSE_INVALID"


async def test_unknown_kids_refetch_the_key_set_at_most_once_a_minute(stub, idp, clock):
    """A rotated key is picked up (the set fetched again), but forged kids cannot make
    authsvc fetch the set on every sign-in."""
    await provider_sign_in(stub, idp)
    fetched = idp.requests["/jwks"]
    idp.rotate()
    failure = await fails(provider_sign_in(stub, idp))  # within the minute: no fetch
    assert (failure.reason, idp.requests["/jwks"]) == ("PROVIDER_RESPONSE_INVALID", fetched)
    clock.advance(61)
    assert (await provider_sign_in(stub, idp)).access_token
    assert idp.requests["/jwks"] == fetched + 1


# --- linking -----------------------------------------------------------------------

async def test_an_unverified_provider_email_never_links_to_an_account(stub, idp, user,
                                                                      database_url):
    """The provider does not assert the e-mail verified: IDENTITY_LINK_REQUIRED, no
    identity is written, and it is audited."""
    await verify_email(database_url, "alice@example.com")
    idp.user = RogueUser("attacker-sub", "alice@example.com", email_verified=False)
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(callback.finish()))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                              "IDENTITY_LINK_REQUIRED")
    assert ("federation.refused", "link_required:idp") in await audit_kinds(database_url)
    signed_in = await sign_in(stub)
    found = await stub.ListIdentities(auth_pb2.ListIdentitiesRequest(),
                                      metadata=bearer(signed_in.access_token))
    assert list(found.identities) == []


async def test_an_unverified_account_email_is_not_linked_either(stub, idp, user,
                                                                database_url):
    """The provider asserts the e-mail, but the account never proved it."""
    await verify_email(database_url, "alice@example.com", verified=False)
    callback = await visit(stub, idp)
    failure = await fails(stub.FinishProviderSignIn(callback.finish()))
    assert failure.reason == "IDENTITY_LINK_REQUIRED"


async def test_verified_on_both_sides_links_to_the_account(stub, idp, user, database_url):
    await verify_email(database_url, "alice@example.com")
    answer = await provider_sign_in(stub, idp)
    assert (answer.user_id, answer.created) == (user, False)


async def test_a_signed_in_user_links_and_unlinks_an_identity(stub, idp, user, database_url):
    """LinkIdentity, then the callback links (no tokens); the identity then signs the
    user in; unlinking it (a password remains) is audited."""
    token = (await sign_in(stub)).access_token
    started = await stub.LinkIdentity(auth_pb2.LinkIdentityRequest(provider="idp"),
                                      metadata=bearer(token))
    params = await asyncio.to_thread(authorize, idp, started.authorization_url)
    linked = await stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="idp", flow_id=started.flow_id, state=params["state"], code=params["code"],
        iss=params["iss"]))
    assert (linked.linked, linked.access_token) == (True, "")
    assert (await provider_sign_in(stub, idp)).user_id == user
    await stub.UnlinkIdentity(auth_pb2.UnlinkIdentityRequest(provider="idp",
                                                             subject="alice-sub"),
                              metadata=bearer(token))
    kinds = await audit_kinds(database_url)
    assert ("identity.linked", "idp") in kinds and ("identity.unlinked", "idp") in kinds


async def test_an_identity_of_another_user_cannot_be_linked(stub, idp, user):
    idp.user = RogueUser("mallory-sub", "mallory@example.com", True)
    await provider_sign_in(stub, idp)  # the identity's own user
    token = (await sign_in(stub)).access_token
    started = await stub.LinkIdentity(auth_pb2.LinkIdentityRequest(provider="idp"),
                                      metadata=bearer(token))
    params = await asyncio.to_thread(authorize, idp, started.authorization_url)
    failure = await fails(stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="idp", flow_id=started.flow_id, state=params["state"], code=params["code"],
        iss=params["iss"])))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS,
                                              "IDENTITY_ALREADY_LINKED")


async def test_the_last_way_to_sign_in_cannot_be_unlinked(stub, idp):
    answer = await provider_sign_in(stub, idp)
    failure = await fails(stub.UnlinkIdentity(
        auth_pb2.UnlinkIdentityRequest(provider="idp", subject="alice-sub"),
        metadata=bearer(answer.access_token)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                              "LAST_SIGN_IN_METHOD")


async def test_unlinking_an_identity_not_linked_is_not_found(stub, user):
    token = (await sign_in(stub)).access_token
    failure = await fails(stub.UnlinkIdentity(
        auth_pb2.UnlinkIdentityRequest(provider="idp", subject="nobody"),
        metadata=bearer(token)))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_linking_needs_a_fresh_second_factor_when_the_user_has_one(stub, user,
                                                                         database_url):
    token = (await sign_in(stub)).access_token
    await enable_totp(stub, token, database_url)
    failure = await fails(stub.LinkIdentity(auth_pb2.LinkIdentityRequest(provider="idp"),
                                            metadata=bearer(token)))
    assert failure.reason == "INSUFFICIENT_USER_AUTHENTICATION"


# --- second factors ----------------------------------------------------------------

async def test_a_user_with_a_second_factor_gets_mfa_required(stub, idp, database_url):
    """The provider's sign-in is the first factor: MFA_REQUIRED, and CompleteSignIn
    gives amr fed + otp."""
    first = await provider_sign_in(stub, idp)
    secret, step, _codes = await enable_totp(stub, first.access_token, database_url)
    callback = await visit(stub, idp)
    try:
        await stub.FinishProviderSignIn(callback.finish())
        raise AssertionError("no MFA_REQUIRED")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        challenge = error_metadata(error)
    done = await stub.CompleteSignIn(auth_pb2.CompleteSignInRequest(
        mfa_token=challenge["mfa_token"], totp=totp.code(secret, step + 1)))
    assert claims_of(done.access_token)["amr"] == ["fed", "otp"]


# --- refusals of the provider side and the input ------------------------------------

async def test_a_foreign_redirect_is_refused(stub):
    for target in ("https://evil.example/", "https://app.example.evil.example/",
                   "https://user@app.example/", "//evil.example", "javascript:alert(1)",
                   "https://app.example\\@evil.example/"):
        failure = await fails(stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(
            provider="idp", redirect_to=target)))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                  ["redirect_to"]), target


async def test_a_redirect_uri_not_configured_is_refused(stub):
    failure = await fails(stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(
        provider="idp", redirect_uri="https://evil.example/callback")))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT,
                                              ["redirect_uri"])


async def test_an_unknown_provider_is_not_found(stub):
    failure = await fails(stub.StartProviderSignIn(
        auth_pb2.StartProviderSignInRequest(provider="nope")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "PROVIDER_UNKNOWN")


async def test_a_provider_that_is_down_is_unavailable(stub, idp):
    idp.close()
    failure = await fails(stub.StartProviderSignIn(
        auth_pb2.StartProviderSignInRequest(provider="idp")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE,
                                              "PROVIDER_UNAVAILABLE")


async def test_a_slow_provider_is_given_up_on_after_the_timeout(stub, idp):
    """A token endpoint that does not answer: PROVIDER_UNAVAILABLE after
    AUTHSVC_PROVIDER_TIMEOUT (2 s here), not a hang (the provider would hold it two
    minutes; the fixture releases it)."""
    callback = await visit(stub, idp)
    idp.hold_token = threading.Event()
    failure = await fails(stub.FinishProviderSignIn(callback.finish(), timeout=30))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE,
                                              "PROVIDER_UNAVAILABLE")


class TestSignUpOff:
    @pytest.fixture
    def settings(self, settings):
        return dataclasses.replace(settings, signup="off")

    async def test_a_new_identity_is_refused_when_sign_up_is_off(self, stub, idp):
        callback = await visit(stub, idp)
        failure = await fails(stub.FinishProviderSignIn(callback.finish()))
        assert failure.reason == "SIGNUP_DISABLED"


class TestTrustedAcr:
    @pytest.fixture
    def settings(self, settings, tmp_path, idp, other_idp, github):
        path = write_providers(tmp_path / "trusting.toml",
                               *provider_sections(tmp_path, idp, other_idp, github,
                                                  trust_acr=("phr",)))
        return dataclasses.replace(settings, providers_file=path)

    async def test_a_trusted_acr_satisfies_the_second_factor(self, stub, idp, database_url):
        """With trust_acr, the provider's phishing-resistant sign-in counts as MFA."""
        first = await provider_sign_in(stub, idp)
        await enable_totp(stub, first.access_token, database_url)
        idp.claims = {"acr": "phr"}
        answer = await provider_sign_in(stub, idp)
        assert claims_of(answer.access_token)["amr"] == ["fed", "mfa"]



class TestPrivateKeyJwt:
    """private_key_jwt (RFC 7523): the client authenticates with a signed assertion,
    no shared secret; the provider here accepts nothing else."""

    @pytest.fixture
    def client_key(self):
        return ec.generate_private_key(ec.SECP256R1())

    @pytest.fixture
    def idp(self, client_key) -> Iterator[RogueProvider]:
        with running_rogue_provider(ALICE, client_key=client_key.public_key()) as provider:
            yield provider

    @pytest.fixture
    def settings(self, settings, tmp_path, idp, client_key):
        pem = tmp_path / "client.pem"
        pem.write_bytes(client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        path = write_providers(
            tmp_path / "pkjwt.toml",
            oidc_section("idp", idp, redirect_uris=[callback("idp")],
                         client_auth="private_key_jwt", private_key_file=pem,
                         private_key_kid="client-1"))
        return dataclasses.replace(settings, providers_file=path)

    async def test_a_sign_in_authenticates_the_client_with_a_signed_assertion(self, stub,
                                                                              idp):
        answer = await provider_sign_in(stub, idp)
        assert answer.access_token and answer.created


async def test_users_without_a_password_do_not_aim_the_dummy_hash(stub, idp, app, user):
    """Unknown users cost what most stored hashes cost: users of providers only, who
    have none, are left out of that count."""
    for n in range(3):
        idp.user = RogueUser(f"sub-{n}", f"fed{n}@example.com", True)
        await provider_sign_in(stub, idp)
    async with app.db.connection() as conn:
        typical = await user_rows.typical_password_hash(conn)
    assert typical is not None and typical.startswith("$argon2id$")


async def test_first_sign_ins_of_one_identity_in_three_tabs_make_one_user(stub, idp,
                                                                          database_url):
    """Three flows of a new identity finishing at once: all sign in, as one user."""
    callbacks = [await visit(stub, idp) for _ in range(3)]
    answers = await asyncio.gather(*(stub.FinishProviderSignIn(c.finish()) for c in callbacks))
    assert len({a.user_id for a in answers}) == 1
    assert sum(a.created for a in answers) == 1
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1
    finally:
        await conn.close()
