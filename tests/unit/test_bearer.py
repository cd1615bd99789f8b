"""The bearer token of a call (``authsvc.guard.bearer``): exactly one
``authorization: Bearer …`` value, or nothing at all."""

from __future__ import annotations

import pytest

from authsvc.errors import TokenInvalid
from authsvc.guard.bearer import MalformedAuthorization, bearer_token

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln-_~+/=="


def test_one_bearer_value_yields_its_token():
    """The token of the one authorization value; other metadata is ignored."""
    metadata = [("x-request-id", "42"), ("authorization", f"Bearer {TOKEN}"),
                ("grpcgateway-authorization", "Bearer other")]

    token = bearer_token(metadata)

    assert token == TOKEN


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_the_scheme_matches_in_any_case(scheme):
    """RFC 7235: the scheme name is case-insensitive."""
    token = bearer_token([("authorization", f"{scheme} {TOKEN}")])

    assert token == TOKEN


def test_several_spaces_may_separate_scheme_and_token():
    """One or more spaces separate the scheme from the token."""
    token = bearer_token([("authorization", f"Bearer   {TOKEN}")])

    assert token == TOKEN


@pytest.mark.parametrize("metadata", [
    [("authorization", f"Bearer {TOKEN}"), ("authorization", f"Bearer {TOKEN}")],
    [("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer x.y.z")],
    [("authorization", f"Basic {TOKEN}")],
    [("authorization", f"Token {TOKEN}")],
    [("authorization", "Bearer")],
    [("authorization", "Bearer ")],
    [("authorization", f"Bearer {TOKEN} {TOKEN}")],
    [("authorization", f"Bearer {TOKEN}, Bearer {TOKEN}")],
    [("authorization", f"Bearer\t{TOKEN}")],
    [("authorization", f" Bearer {TOKEN}")],
    [("authorization", f"Bearer {TOKEN} ")],
    [("authorization", "Bearer tok@en")],
    [("authorization", f"Bearer {TOKEN}".encode())],
], ids=["two-equal-values", "two-different-values", "basic-scheme", "token-scheme",
        "scheme-alone", "scheme-and-space", "two-tokens", "comma-list", "tab", "leading-space",
        "trailing-space", "not-token68", "bytes"])
def test_anything_but_one_well_formed_bearer_value_is_malformed(metadata):
    """Two values, another scheme, a malformed Bearer value or a binary value is
    MalformedAuthorization."""
    with pytest.raises(MalformedAuthorization):
        bearer_token(metadata)


def test_malformed_authorization_is_an_invalid_request_token_error():
    """MalformedAuthorization is a TokenInvalid whose RFC 6750 error is invalid_request."""
    error = MalformedAuthorization()

    assert isinstance(error, TokenInvalid)
    assert (error.reason, error.error, error.message) == (
        "TOKEN_INVALID", "invalid_request",
        "The authorization metadata must hold exactly one Bearer token.")


@pytest.mark.parametrize("metadata", [None, [], [("x-access-token", TOKEN)],
                                      [("grpcgateway-authorization", f"Bearer {TOKEN}")],
                                      [("authorization-bin", f"Bearer {TOKEN}".encode())]],
                         ids=["none", "empty", "other-key", "gateway-copy-alone", "binary-key"])
def test_no_authorization_value_means_no_token(metadata):
    """Without an authorization value there is no token: None, not an error."""
    assert bearer_token(metadata) is None
