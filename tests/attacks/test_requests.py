"""Requests an attacker shapes: undecodable bytes, authorization metadata, forwarded-for
headers and oversize fields; the exact answer each gets, and no state changed.

The cases share one server per module (``kit``).
"""

from __future__ import annotations

import uuid

import pytest

from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, bearer
from .attack_helpers import refused
from .kit import (
    INVALID_ARGUMENT,
    INVALID_REQUEST_CHALLENGE,
    NO_TOKEN_CHALLENGE,
    UNAUTHENTICATED,
    assert_invalid,
)

UNDECODABLE = {
    "corrupt-wire-format": ("GetJwks", b"\xff\xff"),
    "truncated-field": ("SignIn", b"\x0a\x40abc"),
    "invalid-utf8-string": ("Validate", b"\x0a\x02\xff\xfe"),
    "invalid-utf8-refresh-token": ("Refresh", b"\x0a\x02\xc3\x28"),
}


@pytest.mark.parametrize("case", UNDECODABLE.values(), ids=UNDECODABLE.keys())
def test_undecodable_request_is_invalid_argument(kit, case):
    """Bytes that are not a valid request message (a client's mistake) are INVALID_ARGUMENT,
    never UNKNOWN, and the answer does not echo the parser's error text."""
    method, raw = case
    call = kit.service.channel.unary_unary(f"/authsvc.v1.Auth/{method}")

    failure = refused(lambda: call(raw, timeout=10))

    assert failure.code == INVALID_ARGUMENT
    assert "DecodeError" not in failure.message and "parsing" not in failure.message


# --- authorization metadata -------------------------------------------------------------

METADATA = {
    # metadata (with {t} for alice's real token) → (reason, challenge)
    # (A tab or other control character cannot be sent: gRPC refuses it client-side.)
    "missing": ((), ("TOKEN_MISSING", NO_TOKEN_CHALLENGE)),
    "basic-scheme": ((("authorization", "Basic YWxpY2U6cGFzc3dvcmQ="),),
                     ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "token-scheme": ((("authorization", "Token {t}"),),
                     ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "bearer-alone": ((("authorization", "Bearer"),),
                     ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "bearer-two-tokens": ((("authorization", "Bearer {t} {t}"),),
                          ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "bearer-comma-list": ((("authorization", "Bearer {t}, Bearer {t}"),),
                          ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "two-values-same-token": ((("authorization", "Bearer {t}"), ("authorization", "Bearer {t}")),
                              ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "two-values-good-first": ((("authorization", "Bearer {t}"), ("authorization", "Bearer x.y.z")),
                              ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "two-values-good-last": ((("authorization", "Bearer x.y.z"), ("authorization", "Bearer {t}")),
                             ("TOKEN_INVALID", INVALID_REQUEST_CHALLENGE)),
    "gateway-prefixed-alone": ((("grpcgateway-authorization", "Bearer {t}"),),
                               ("TOKEN_MISSING", NO_TOKEN_CHALLENGE)),
    "binary-key-alone": ((("authorization-bin", b"Bearer {t}"),),
                         ("TOKEN_MISSING", NO_TOKEN_CHALLENGE)),
    "other-header-alone": ((("x-access-token", "{t}"),), ("TOKEN_MISSING", NO_TOKEN_CHALLENGE)),
}


def _metadata(template: tuple, token: str) -> tuple:
    return tuple((k, v.replace(b"{t}", token.encode()) if isinstance(v, bytes)
                  else v.format(t=token)) for k, v in template)


@pytest.mark.parametrize("case", METADATA.values(), ids=METADATA.keys())
def test_authorization_metadata_must_be_one_bearer_value(kit, case):
    """Missing, another scheme, malformed Bearer, two values or only the gateway's copy:
    refused with the exact reason and RFC 6750 challenge."""
    template, (reason, challenge) = case
    metadata = _metadata(template, kit.alice.access_token)
    before = kit.service.snapshot()

    failure = refused(lambda: kit.stub.Validate(auth_pb2.ValidateRequest(), metadata=metadata))

    assert (failure.code, failure.reason, failure.challenge) == (UNAUTHENTICATED, reason,
                                                                 challenge)
    assert kit.service.snapshot() == before


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(kit, scheme):
    """RFC 7235: the scheme name matches in any case."""
    metadata = (("authorization", f"{scheme} {kit.alice.access_token}"),)

    response = kit.stub.Validate(auth_pb2.ValidateRequest(), metadata=metadata)

    assert response.session_id == kit.alice.session_id


def test_gateway_forwarded_pair_is_one_credential(kit):
    """authorization plus grpcgateway-authorization (what the gateway sends) is accepted."""
    metadata = (("authorization", f"Bearer {kit.alice.access_token}"),
                ("grpcgateway-authorization", f"Bearer {kit.alice.access_token}"))

    response = kit.stub.Validate(auth_pb2.ValidateRequest(), metadata=metadata)

    assert response.session_id == kit.alice.session_id


def test_a_forged_field_is_not_rescued_by_valid_metadata(kit):
    """When access_token is set it alone decides: a forged field with a valid bearer in
    metadata is TOKEN_INVALID."""
    forged = kit.genuine.with_claims(scope="admin").compact()

    failure = refused(lambda: kit.stub.Validate(auth_pb2.ValidateRequest(access_token=forged),
                                                metadata=bearer(kit.alice.access_token)))

    assert_invalid(failure)


@pytest.mark.parametrize("case", ["two-values-good-first", "gateway-prefixed-alone",
                                  "basic-scheme"])
def test_revoke_all_sessions_needs_one_valid_bearer(kit, case):
    """Revoke(all_sessions) with two authorization values, only the gateway's copy or
    another scheme revokes nothing."""
    template, (reason, _challenge) = METADATA[case]
    metadata = _metadata(template, kit.alice.access_token)
    before = kit.service.snapshot()

    failure = refused(lambda: kit.stub.Revoke(auth_pb2.RevokeRequest(all_sessions=True),
                                              metadata=metadata))

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, reason)
    assert kit.service.snapshot() == before


def test_revoke_with_a_forged_token_naming_another_session_revokes_nothing(kit):
    """A token with bob's sid but alice's signature, offered to Revoke, leaves bob's
    session alone (Revoke answers OK, as RFC 7009 says)."""
    forged = kit.genuine.with_claims(sid=kit.bob.session_id, sub=kit.bob.user_id).compact()
    before = kit.service.snapshot()

    kit.stub.Revoke(auth_pb2.RevokeRequest(token=forged))

    assert kit.service.snapshot() == before
    assert kit.stub.Validate(auth_pb2.ValidateRequest(access_token=kit.bob.access_token))


def test_forwarded_for_from_an_untrusted_peer_is_ignored(kit):
    """x-forwarded-for from a client that is no trusted proxy does not become the audited
    (and throttled) client address."""
    before = kit.service.snapshot()

    failure = refused(lambda: kit.stub.SignIn(
        auth_pb2.SignInRequest(email="alice@example.com", password="wrong password"),
        metadata=(("x-forwarded-for", "203.0.113.7"), ("x-real-ip", "203.0.113.8"))))

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert kit.fetchval("SELECT client_addr FROM auth_events WHERE kind = 'signin.failure'"
                        " ORDER BY id DESC LIMIT 1") == "127.0.0.1"
    assert kit.service.snapshot() == before


# --- field limits ------------------------------------------------------------------------

EMAIL_254 = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
LIMITS = {
    "email-254": (("email", EMAIL_254), PASSWORD, None),
    "email-255": (("email", EMAIL_254.replace("@", "@e")), PASSWORD, "email"),
    "username-64": (("username", "u" * 64), PASSWORD, None),
    "username-65": (("username", "u" * 65), PASSWORD, "username"),
    "password-1024": (("email", "alice@example.com"), "p" * 1024, None),
    "password-1024-multibyte": (("email", "alice@example.com"), "é" * 1024, None),
    "password-1025": (("email", "alice@example.com"), "p" * 1025, "password"),
    "password-1025-multibyte": (("email", "alice@example.com"), "é" * 1025, "password"),
    "password-60k": (("email", "alice@example.com"), "p" * 60_000, "password"),
}


@pytest.mark.parametrize("case", LIMITS.values(), ids=LIMITS.keys())
def test_maximum_lengths_are_exact(kit, case):
    """Email 254 and username 64 characters and a 1024-character password sign in; one
    character more is INVALID_ARGUMENT naming the field, before anything is stored."""
    (kind, identifier), password, field = case
    if kind == "email" and identifier == "alice@example.com":
        kind, identifier = "username", f"limits-{uuid.uuid4().hex[:8]}"
    if field is None:
        kit.service.run(kit.service.app.accounts.add(kind, identifier, password))
        response = kit.stub.SignIn(auth_pb2.SignInRequest(**{kind: identifier},
                                                          password=password))
        assert response.access_token
        return
    before = kit.service.snapshot()

    failure = kit.sign_in_refused(**{kind: identifier}, password=password)

    assert (failure.code, failure.reason, failure.fields) == (INVALID_ARGUMENT,
                                                              "INVALID_ARGUMENT", [field])
    assert kit.service.snapshot() == before


