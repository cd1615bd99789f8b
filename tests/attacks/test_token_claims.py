"""Tokens under a genuine signature with their claims, times or shape tampered with, and
tokens minted with a stolen key: the exact answer each gets from Validate.

Tokens made with the service's own key (``Kit.ours``) test its strictness, not
forgery. The kit cases share one server per module and must not change its
state; the cases needing a clock that moves get a server of their own.
"""

from __future__ import annotations

import contextlib
import json
import uuid

import grpc
import pytest
from jwt.algorithms import get_default_algorithms

from authsvc.v1 import auth_pb2

from ..helpers import fails, sign_in
from .attack_helpers import DELETE, Parts, b64, encode_json, refused
from .catalogue import (
    MISTYPED,
    REQUIRED_CLAIMS,
    SHAPES,
    TAMPERED,
    TIMES,
    WRONG_AUDIENCES,
    WRONG_ISSUERS,
)
from .kit import INVALID_ARGUMENT, INVALID_TOKEN, UNAUTHENTICATED, assert_invalid

# --- claims tampered after signing ------------------------------------------------------


@pytest.mark.parametrize("change", TAMPERED.values(), ids=TAMPERED.keys())
def test_claims_changed_after_signing_are_refused(kit, change):
    """Editing any claim while keeping the signature is TOKEN_INVALID."""
    token = kit.genuine.with_claims(**change(kit)).compact()

    failure = kit.present(token)

    assert_invalid(failure)


def test_signature_transplanted_from_another_token_is_refused(kit):
    """Alice's header and payload under bob's (valid) signature is TOKEN_INVALID."""
    header, payload, _ = kit.alice.access_token.split(".")
    token = f"{header}.{payload}.{kit.bob.access_token.rsplit('.', 1)[1]}"

    failure = kit.present(token)

    assert_invalid(failure)


def test_payload_of_one_token_with_header_of_another_is_refused(kit):
    """Bob's payload spliced between alice's header and signature is TOKEN_INVALID."""
    a_header, _, a_signature = kit.alice.access_token.split(".")
    token = f"{a_header}.{kit.bob.access_token.split('.')[1]}.{a_signature}"

    failure = kit.present(token)

    assert_invalid(failure)


# --- missing and mistyped claims, under our own signature -------------------------------


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_required_claim_is_refused(kit, claim):
    """Each of exp iat nbf iss aud sub jti sid is required, even under our signature."""
    failure = kit.present(kit.ours(**{claim: DELETE}))

    assert_invalid(failure)


@pytest.mark.parametrize("claims", MISTYPED.values(), ids=MISTYPED.keys())
def test_mistyped_claim_is_refused(kit, claims):
    """A claim of the wrong type (or a time that is not a finite instant protobuf can
    carry) is TOKEN_INVALID even under our signature, never INTERNAL."""
    failure = kit.present(kit.ours(**claims))

    assert_invalid(failure)


@pytest.mark.parametrize("iss", WRONG_ISSUERS)
def test_issuer_must_match_exactly(kit, iss):
    """iss that is a substring, superstring, or differs in case or space: TOKEN_INVALID."""
    failure = kit.present(kit.ours(iss=iss))

    assert_invalid(failure)


@pytest.mark.parametrize("aud", WRONG_AUDIENCES, ids=lambda a: json.dumps(a))
def test_audience_must_be_exactly_our_string(kit, aud):
    """aud as a list (even holding ours) or any other string is TOKEN_INVALID."""
    failure = kit.present(kit.ours(aud=aud))

    assert_invalid(failure)


# --- time claims around the leeway (30 s) -----------------------------------------------


@pytest.mark.parametrize("case", TIMES.values(), ids=TIMES.keys())
def test_time_claims_are_checked_to_the_second(kit, case):
    """exp is accepted until exp + 30 s; nbf and iat no more than 30 s ahead."""
    offsets, reason = case
    claims = {"iat": kit.now, "nbf": kit.now, "exp": kit.now + 900,
              "sid": str(uuid.uuid4())}  # a session nobody revokes
    claims.update({name: kit.now + offset for name, offset in offsets.items()})
    token = kit.ours(**claims)

    if reason is None:
        response = kit.stub.Validate(auth_pb2.ValidateRequest(access_token=token))
        assert response.session_id == claims["sid"]
    else:
        failure = kit.present(token)
        assert (failure.code, failure.reason) == (UNAUTHENTICATED, reason)


async def test_not_yet_valid_token_becomes_valid_exactly_at_nbf_minus_leeway(stub, app, clock,
                                                                              user):
    """A token with nbf 60 s ahead is refused, then accepted once the clock is 30 s on."""
    genuine = Parts.of((await sign_in(stub)).access_token)
    signer = app.keystore.ring.signer(clock())
    token = genuine.with_claims(nbf=int(clock()) + 60).signed(signer.alg, signer.private_key)
    early = await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=token)))
    clock.advance(29)
    still_early = await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=token)))
    clock.advance(1)

    response = await stub.Validate(auth_pb2.ValidateRequest(access_token=token))

    assert (early.reason, still_early.reason) == ("TOKEN_INVALID", "TOKEN_INVALID")
    assert response.user_id == user


# --- the shape of the token -------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_malformed_token_is_refused(kit, shape):
    """A token of the wrong shape or encoding is TOKEN_INVALID, never INTERNAL."""
    failure = kit.present(shape(kit))

    assert_invalid(failure)


def test_payload_that_is_not_an_object_is_refused_even_under_our_signature(kit):
    """A signed payload that is a JSON array is TOKEN_INVALID."""
    signer = kit.signer
    header = {"alg": signer.alg, "kid": signer.kid, "typ": "at+jwt"}
    signing_input = f"{encode_json(header)}.{encode_json(['not', 'claims'])}"
    signature = get_default_algorithms()[signer.alg].sign(signing_input.encode(),
                                                          signer.private_key)

    failure = kit.present(f"{signing_input}.{b64(signature)}")

    assert_invalid(failure)


@pytest.mark.parametrize("size", [8193, 60 * 1024])
def test_oversize_token_is_invalid_argument(kit, size):
    """A JWT-shaped access_token over 8 KiB is INVALID_ARGUMENT naming access_token."""
    token = kit.genuine.with_header(pad="p" * size).compact()[:size]
    before = kit.service.snapshot()

    failure = refused(lambda: kit.stub.Validate(auth_pb2.ValidateRequest(access_token=token)))

    assert (failure.code, failure.reason, failure.fields) == (
        INVALID_ARGUMENT, "INVALID_ARGUMENT", ["access_token"])
    assert kit.service.snapshot() == before


def test_refresh_token_is_not_an_access_token_and_vice_versa(kit):
    """Each kind of token is refused where the other belongs."""
    before = kit.service.snapshot()

    as_access = refused(lambda: kit.stub.Validate(
        auth_pb2.ValidateRequest(access_token=kit.alice.refresh_token)))
    as_refresh = refused(lambda: kit.stub.Refresh(
        auth_pb2.RefreshRequest(refresh_token=kit.alice.access_token)))

    assert (as_access.code, as_access.reason) == INVALID_TOKEN
    assert (as_refresh.code, as_refresh.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    assert kit.service.snapshot() == before


# --- a stolen signing key after rotation ------------------------------------------------


def test_token_living_longer_than_the_access_token_ttl_is_refused(kit):
    """Even under our own key, a token whose exp - iat exceeds the configured access-token
    lifetime (900 s) is TOKEN_INVALID: authsvc never issues one."""
    failure = kit.present(kit.ours(iat=kit.now, nbf=kit.now, exp=kit.now + 10 * 365 * 86400))

    assert_invalid(failure)


async def test_a_stolen_retired_key_mints_nothing_once_unpublished(stub, app, user, clock):
    """After rotation, tokens the attacker mints with the old (stolen) key are refused as
    soon as that key leaves the JWKS, even ones Validate saw while it was published."""
    genuine = Parts.of((await sign_in(stub)).access_token)
    stolen = app.keystore.ring.signer(clock())
    await app.keystore.rotate()
    now = int(clock())
    minted = genuine.with_claims(iat=now, nbf=now, exp=now + 10 * 365 * 86400,
                                 sid=str(uuid.uuid4())).signed(stolen.alg, stolen.private_key)
    with contextlib.suppress(grpc.RpcError):  # seen while the key is still published
        await stub.Validate(auth_pb2.ValidateRequest(access_token=minted))
    clock.advance(900 + 30 + 1)

    failure = await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=minted)))

    assert (failure.code, failure.reason) == INVALID_TOKEN


# --- profile claims (AUTHSVC_ACCESS_TOKEN_PROFILE) ---------------------------------------


def test_a_tokens_own_profile_is_answered_as_issued(kit):
    """A token that carries profile claims (under our signature) is answered with them,
    as they were when it was issued, and with nothing it does not carry."""
    token = kit.ours(email="before@example.com", email_verified=False)

    answer = kit.stub.Validate(auth_pb2.ValidateRequest(access_token=token, profile=True))

    assert (answer.email, answer.email_verified) == ("before@example.com", False)
    assert not answer.HasField("phone_number") and not answer.HasField("preferred_username")
