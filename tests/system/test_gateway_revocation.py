"""The gateway's discovery document and the endpoints it names, measured against the
standards it cites: the real gateway binary in front of real authsvc.

- ``revocation_endpoint`` with auth method ``none`` takes RFC 7009's request: a
  form with ``token`` and ``token_type_hint``, answered 200 for a token it
  revoked and for one it does not know, ``unsupported_token_type`` for a hint
  naming a type authsvc has no tokens of, ``invalid_request`` without a token.
- In cookie mode such a form never spends the cookie.
- ``id_token_signing_alg_values_supported`` names the algorithms of the key
  set authsvc publishes, not every algorithm authsvc could sign with.
- ``introspection_endpoint_auth_methods_supported`` is ``["Bearer"]``, a name
  RFC 8414 allows there (the OAuth Access Token Types registry), and
  introspection takes exactly such a token.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from ..helpers import PASSWORD
from .test_gateway import (  # noqa: F401 (fixtures are used by name)
    Process,
    Reply,
    Stack,
    bearer,
    call,
    gateway_binary,
    send,
    stack_factory,
)

pytestmark = pytest.mark.go
ISSUER = "https://auth.example.com"
ORIGIN = "https://app.example.com"
COOKIE = "__Host-authsvc_refresh"
FORM = ("Content-Type", "application/x-www-form-urlencoded")


def post_form(address: str, fields: dict[str, str] | str,
              headers: tuple[tuple[str, str], ...] = (), path: str = "/v1/auth/revoke") -> Reply:
    """POSTs an application/x-www-form-urlencoded body (to the revocation endpoint)."""
    body = (fields if isinstance(fields, str) else urlencode(fields)).encode()
    host, port = address.rsplit(":", 1)
    return send(http.client.HTTPConnection(host, int(port), timeout=15), "POST", path,
                headers=headers, raw=body, content_type=FORM[1])


@pytest.fixture(scope="module")
def edge(stack_factory: Any, gateway_binary: Path) -> Iterator[tuple[Stack, str]]:  # noqa: F811
    """authsvc signing with EdDSA under ISSUER, and a gateway for that issuer in cookie
    mode for ORIGIN; returns the stack and the gateway's address."""
    stack = stack_factory({"AUTHSVC_ISSUER": ISSUER, "AUTHSVC_SIGNING_ALG": "EdDSA"})
    upstream = stack.authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
    gateway = Process([str(gateway_binary), "--listen", "127.0.0.1:0", "--upstream", upstream,
                       "--issuer", ISSUER, "--cors-origins", ORIGIN, "--refresh-cookie"])
    try:
        yield stack, gateway.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)
    finally:
        gateway.stop()


def test_revocation_form_revokes_refresh_and_access_tokens(edge: tuple[Stack, str]) -> None:
    """token=…&token_type_hint=refresh_token (and access_token, and no hint) is 200 and
    ends the token's session: its refresh token no longer refreshes and its access
    token is TOKEN_REVOKED."""
    stack, address = edge
    by_refresh, by_access, unhinted = stack.sign_in(), stack.sign_in(), stack.sign_in()

    replies = [
        post_form(address, {"token": by_refresh["refresh_token"],
                            "token_type_hint": "refresh_token"}),
        post_form(address, {"token": by_access["access_token"], "token_type_hint": "access_token"}),
        post_form(address, {"token": unhinted["refresh_token"]}),
    ]
    refreshed = [call(address, "POST", "/v1/auth/refresh", {"refresh_token": t["refresh_token"]})
                 for t in (by_refresh, by_access, unhinted)]
    validated = [call(address, "POST", "/v1/auth/validate", {}, bearer(t["access_token"]))
                 for t in (by_refresh, by_access, unhinted)]

    assert [r.status for r in replies] == [200, 200, 200], [r.body for r in replies]
    assert [r.header("Content-Type") for r in replies] == ["application/json"] * 3
    assert [r.status for r in refreshed] == [401, 401, 401]
    assert [(r.status, r.reason()) for r in validated] == [(401, "TOKEN_REVOKED")] * 3


def test_revocation_form_answers_as_rfc_7009_says(edge: tuple[Stack, str]) -> None:
    """An unknown or malformed token is 200 (and revokes nothing); a hint authsvc has no
    tokens of is 400 unsupported_token_type; a form without a token, or with one twice,
    is 400 invalid_request; all without quoting the request."""
    stack, address = edge
    bystander = stack.sign_in()

    unknown = post_form(address, {"token": "not-a-token", "token_type_hint": "refresh_token"})
    jwt_like = post_form(address, {"token": "a.b.c"})
    bad_hint = post_form(address, {"token": bystander["refresh_token"],
                                   "token_type_hint": "<script>"})
    missing = post_form(address, {"token_type_hint": "refresh_token"})
    twice = post_form(address, "token=a&token=b")
    still = call(address, "POST", "/v1/auth/validate", {}, bearer(bystander["access_token"]))

    assert (unknown.status, jwt_like.status) == (200, 200)
    assert bad_hint.status == 400 and bad_hint.json["error"] == "unsupported_token_type"
    assert missing.status == 400 and missing.json["error"] == "invalid_request"
    assert twice.status == 400 and twice.json["error"] == "invalid_request"
    assert [r.header("Cache-Control") for r in (bad_hint, missing, twice)] == ["no-store"] * 3
    assert "<" not in bad_hint.body.decode() and "\\u003c" not in bad_hint.body.decode()
    assert still.status == 200, "a refused revocation revoked the token anyway"


def test_revocation_form_never_spends_the_refresh_cookie(edge: tuple[Stack, str]) -> None:
    """In cookie mode a browser's form revokes the token it names and nothing else: the
    cookie's session lives on, the cookie is not cleared, and a form naming no token
    is refused rather than filled from the cookie."""
    stack, address = edge
    browser = (("Origin", ORIGIN),)
    signed_in = call(address, "POST", "/v1/auth/signin",
                     {"email": stack.add_user(), "password": PASSWORD},
                     browser)
    cookie = next(v.split(";")[0].split("=", 1)[1]
                  for v in signed_in.headers.get_all("Set-Cookie") or [] if v.startswith(COOKIE))
    with_cookie = (*browser, ("Cookie", f"{COOKIE}={cookie}"))
    other = stack.sign_in()

    named = post_form(address, {"token": other["refresh_token"]}, with_cookie)
    unnamed = post_form(address, {"token_type_hint": "refresh_token"}, with_cookie)
    cookie_session = call(address, "POST", "/v1/auth/refresh", {}, with_cookie)
    named_session = call(address, "POST", "/v1/auth/refresh",
                         {"refresh_token": other["refresh_token"]})

    assert named.status == 200 and named.headers.get_all("Set-Cookie") is None
    assert unnamed.status == 400 and unnamed.json["error"] == "invalid_request"
    assert cookie_session.status == 200, cookie_session.body
    assert named_session.status == 401


def test_discovery_names_the_key_sets_algorithms_and_bearer_introspection(
        edge: tuple[Stack, str]) -> None:
    """With authsvc signing EdDSA, both discovery documents list exactly the JWKS's
    algorithms ([EdDSA]); introspection's auth method is Bearer and a bearer token
    with scope authsvc.introspect is what introspection takes."""
    _, address = edge

    documents = [call(address, "GET", path) for path in
                 ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")]
    jwks = call(address, "GET", "/.well-known/jwks.json")
    no_bearer = post_form(address, {"token": "x"}, path="/v1/auth/introspect")

    assert [d.status for d in documents] == [200, 200]
    assert documents[0].json == documents[1].json
    doc = documents[0].json
    assert sorted({key["alg"] for key in jwks.json["keys"]}) == ["EdDSA"]
    assert doc["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert doc["revocation_endpoint"] == ISSUER + "/v1/auth/revoke"
    assert doc["revocation_endpoint_auth_methods_supported"] == ["none"]
    assert doc["introspection_endpoint_auth_methods_supported"] == ["Bearer"]
    assert no_bearer.status == 401
    assert no_bearer.header("WWW-Authenticate") == 'Bearer realm="authsvc"'
    assert doc["issuer"] == ISSUER
