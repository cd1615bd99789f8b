"""The test identity providers themselves (tests/providers): that each is the real
thing the federation tests take it for, so a federation test that fails points at
authsvc, not at its provider."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse

import jwt
import pytest

from ..providers.github import OCTO_UNVERIFIED, OCTO_VERIFIED, GitHubProvider
from ..providers.http import Browserless
from ..providers.rogue import RogueProvider
from ..providers.zitadel import UNVERIFIED, VERIFIED, OIDCProvider

pytestmark = [pytest.mark.go]
REDIRECT = "http://127.0.0.1:5999/v1/auth/providers/test/callback"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def _authorization(endpoint: str, client_id: str, challenge: str, **extra: str) -> str:
    return endpoint + "?" + urllib.parse.urlencode({
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT,
        "scope": "openid email profile", "state": "state-1", "code_challenge": challenge,
        "code_challenge_method": "S256", **extra})


def _discovery(issuer: str) -> dict:
    answer = Browserless().get(issuer + "/.well-known/openid-configuration")
    assert answer.status == 200
    return json.loads(answer.body)


def test_zitadel_op_signs_a_user_in_without_a_browser(oidc_provider: OIDCProvider) -> None:
    """The example OP's login form, filled over HTTP, ends in a code (with state and the
    RFC 9207 iss) that the token endpoint exchanges, with the PKCE verifier and the
    client secret, for an RS256 id_token carrying the nonce and a verified e-mail."""
    config = _discovery(oidc_provider.issuer)
    assert config["issuer"] == oidc_provider.issuer
    assert config["authorization_response_iss_parameter_supported"] is True
    verifier, challenge = _pkce()

    back = oidc_provider.sign_in(_authorization(config["authorization_endpoint"], "authsvc",
                                                challenge, nonce="nonce-1"), VERIFIED.username)
    response = _query(back)
    assert back.startswith(REDIRECT + "?")
    assert (response["state"], response["iss"]) == ("state-1", oidc_provider.issuer)
    token = Browserless().post(config["token_endpoint"], {
        "grant_type": "authorization_code", "code": response["code"], "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": oidc_provider.client_id,
        "client_secret": oidc_provider.client_secret})

    assert token.status == 200, token.body
    id_token = json.loads(token.body)["id_token"]
    assert jwt.get_unverified_header(id_token)["alg"] == "RS256"
    claims = jwt.decode(id_token, jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(
        id_token).key, algorithms=["RS256"], audience="authsvc", issuer=oidc_provider.issuer)
    assert (claims["sub"], claims["nonce"], claims["email"], claims["email_verified"]) == (
        VERIFIED.subject, "nonce-1", VERIFIED.email, True)


def test_zitadel_op_asserts_an_unverified_email_and_refuses_a_wrong_verifier(
        oidc_provider: OIDCProvider) -> None:
    """The second user's e-mail is asserted unverified; a code with the wrong PKCE
    verifier is refused (invalid_grant), so the provider checks S256 for real."""
    config = _discovery(oidc_provider.issuer)
    _, challenge = _pkce()
    back = oidc_provider.sign_in(_authorization(config["authorization_endpoint"], "authsvc",
                                                challenge, nonce="n"), UNVERIFIED.username)

    token = Browserless().post(config["token_endpoint"], {
        "grant_type": "authorization_code", "code": _query(back)["code"],
        "redirect_uri": REDIRECT, "code_verifier": _pkce()[0],
        "client_id": oidc_provider.client_id, "client_secret": oidc_provider.client_secret})

    assert (token.status, json.loads(token.body)["error"]) == (400, "invalid_grant")


def test_two_zitadel_ops_are_two_issuers_with_two_keys(
        oidc_provider: OIDCProvider, second_oidc_provider: OIDCProvider) -> None:
    """The mix-up pair: distinct issuers, and neither's JWKS holds the other's key."""
    first, second = (_discovery(p.issuer) for p in (oidc_provider, second_oidc_provider))
    keys = [{k["kid"] for k in json.loads(Browserless().get(c["jwks_uri"]).body)["keys"]}
            for c in (first, second)]

    assert first["issuer"] != second["issuer"]
    assert not keys[0] & keys[1]


def test_github_shape_provider_exchanges_a_code_once(github_provider: GitHubProvider) -> None:
    """Authorize form → code; the code (with its PKCE verifier) → a token, as JSON when
    asked; the token reads /user (numeric id) and /user/emails with verified flags;
    the same code again is GitHub's 200 with bad_verification_code."""
    verifier, challenge = _pkce()
    back = github_provider.sign_in(_authorization(github_provider.authorize_url,
                                                  github_provider.client_id, challenge))
    code = _query(back)["code"]
    form = {"client_id": github_provider.client_id, "client_secret": github_provider.client_secret,
            "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    agent = Browserless()

    first = agent.post(github_provider.token_url, form, {"Accept": "application/json"})
    again = agent.post(github_provider.token_url, form, {"Accept": "application/json"})

    token = json.loads(first.body)["access_token"]
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    assert json.loads(agent.get(github_provider.user_url, auth).body)["id"] == OCTO_VERIFIED.id
    assert json.loads(agent.get(github_provider.emails_url, auth).body) == [
        {"email": "octo@gh.example", "primary": True, "verified": True, "visibility": "public"},
        {"email": "old@gh.example", "primary": False, "verified": False, "visibility": None}]
    assert (again.status, json.loads(again.body)["error"]) == (200, "bad_verification_code")
    assert "iss" not in _query(back)


def test_github_shape_provider_answers_form_encoded_by_default(
        github_provider: GitHubProvider) -> None:
    """Without Accept: application/json the token answer is form-encoded (GitHub's
    default), and the unverified user's only e-mail is unverified."""
    verifier, challenge = _pkce()
    back = github_provider.sign_in(_authorization(github_provider.authorize_url,
                                                  github_provider.client_id, challenge),
                                   OCTO_UNVERIFIED.login)
    answer = Browserless().post(github_provider.token_url, {
        "client_id": github_provider.client_id, "client_secret": github_provider.client_secret,
        "code": _query(back)["code"], "code_verifier": verifier})

    token = dict(urllib.parse.parse_qsl(answer.body.decode()))["access_token"]
    emails = json.loads(Browserless().get(github_provider.emails_url,
                                          {"Authorization": f"token {token}"}).body)
    assert [e["verified"] for e in emails] == [False]


@pytest.mark.parametrize(("alg", "header_alg"), [("none", "none"), ("HS256", "HS256"),
                                                 ("unknown-key", "RS256")])
def test_rogue_provider_bends_its_id_token(rogue_provider: RogueProvider, alg: str,
                                           header_alg: str) -> None:
    """Each bent id_token is what its name says and fails a strict verification against
    the provider's published JWKS."""
    rogue_provider.alg = alg
    config = _discovery(rogue_provider.issuer)
    verifier, challenge = _pkce()
    back = rogue_provider.authorize(_authorization(config["authorization_endpoint"],
                                                   rogue_provider.client_id, challenge, nonce="n1"))
    answer = Browserless().post(config["token_endpoint"], {
        "grant_type": "authorization_code", "code": _query(back)["code"],
        "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": rogue_provider.client_id, "client_secret": rogue_provider.client_secret})
    id_token = json.loads(answer.body)["id_token"]

    assert jwt.get_unverified_header(id_token)["alg"] == header_alg
    jwks = json.loads(Browserless().get(config["jwks_uri"]).body)
    key = jwt.PyJWK(jwks["keys"][0]).key
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(id_token, key, algorithms=["RS256"], audience=rogue_provider.client_id,
                   issuer=rogue_provider.issuer)
    assert _query(back)["iss"] == rogue_provider.issuer


def test_rogue_provider_claims_and_iss_are_settable(rogue_provider: RogueProvider) -> None:
    """Claims override (wrong aud, expired) and the authorization response's iss can be
    another issuer's or left out; the good key still verifies the signature."""
    rogue_provider.claims = {"aud": "someone-else", "exp": int(time.time()) - 60}
    rogue_provider.iss_response = "http://127.0.0.1:1"
    key = jwt.PyJWK(json.loads(Browserless().get(rogue_provider.issuer + "/jwks").body)["keys"][0])
    _, challenge = _pkce()

    back = rogue_provider.authorize(_authorization(rogue_provider.issuer + "/authorize",
                                                   rogue_provider.client_id, challenge))
    claims = jwt.decode(rogue_provider.id_token(), key.key, algorithms=["RS256"],
                        options={"verify_aud": False, "verify_exp": False})
    rogue_provider.iss_response = None
    without = rogue_provider.authorize(_authorization(rogue_provider.issuer + "/authorize",
                                                      rogue_provider.client_id, challenge))

    assert _query(back)["iss"] == "http://127.0.0.1:1"
    assert "iss" not in _query(without)
    assert claims["aud"] == "someone-else" and claims["exp"] < time.time()


def test_rogue_provider_holds_its_token_endpoint(rogue_provider: RogueProvider) -> None:
    """With hold_token set up, a token request gets no answer until the event is set."""
    rogue_provider.hold_token = threading.Event()
    verifier, challenge = _pkce()
    back = rogue_provider.authorize(_authorization(rogue_provider.issuer + "/authorize",
                                                   rogue_provider.client_id, challenge))
    answers: list[int] = []
    request = threading.Thread(target=lambda: answers.append(Browserless().post(
        rogue_provider.issuer + "/token", {
            "grant_type": "authorization_code", "code": _query(back)["code"],
            "redirect_uri": REDIRECT, "code_verifier": verifier,
            "client_id": rogue_provider.client_id,
            "client_secret": rogue_provider.client_secret}).status))
    request.start()

    request.join(0.2)  # not a wait for anything: a check that nothing came yet
    held = list(answers)
    rogue_provider.hold_token.set()
    request.join(30)

    assert (held, answers) == ([], [200])
