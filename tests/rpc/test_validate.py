"""Validate: strict verification, the bearer metadata, expiry, revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.v1 import auth_pb2

from ..helpers import bearer, fails, sign_in


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def segments(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))),
            json.loads(base64.urlsafe_b64decode(pad(payload))), signature)


def assemble(header: dict, payload: dict, signature: str = "") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     signature])


def validate(stub, token):
    return stub.Validate(auth_pb2.ValidateRequest(access_token=token))


def signed(app, clock, **changes):
    """A token signed with the service's real key, with claims or headers changed."""
    key = app.keystore.ring.signer(clock())
    now = int(clock())
    payload = {"iss": "authsvc", "sub": "u", "aud": "authsvc", "iat": now, "nbf": now,
               "exp": now + 900, "jti": "j", "sid": "00000000-0000-0000-0000-000000000000"}
    headers = {"kid": key.kid, "typ": "at+jwt"}
    for name, value in changes.items():
        target = headers if name in ("typ", "kid", "crit") else payload
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return jwt.encode(payload, key.private_key, algorithm="ES256", headers=headers)


async def test_valid_token_returns_its_claims(stub, user, clock):
    """A fresh access token validates and says who and which session."""
    signed_in = await sign_in(stub)

    response = await validate(stub, signed_in.access_token)

    assert response.user_id == user
    assert response.session_id == signed_in.session_id
    assert response.token_id
    assert response.issued_at.seconds == int(clock())
    assert response.expires_at.seconds == int(clock()) + 900


async def test_token_is_taken_from_bearer_metadata_when_the_field_is_empty(stub, user):
    """With no access_token in the request, the authorization metadata is used."""
    signed_in = await sign_in(stub)
    metadata = (("authorization", f"bEaReR {signed_in.access_token}"),)

    response = await stub.Validate(auth_pb2.ValidateRequest(), metadata=metadata)

    assert response.session_id == signed_in.session_id


@pytest.mark.parametrize("metadata", [
    lambda t: (("authorization", f"Bearer {t}"), ("authorization", f"Bearer {t}")),
    lambda t: (("authorization", f"Basic {t}"),),
    lambda t: (("authorization", f"Bearer{t}"),),
    lambda t: (("authorization", f"Bearer {t} extra"),),
    lambda t: (("authorization", "Bearer "),),
], ids=["two-values", "other-scheme", "no-space", "trailing-junk", "empty-token"])
async def test_malformed_authorization_metadata_is_refused(stub, user, metadata):
    """Two values, another scheme or a malformed Bearer value: invalid_request."""
    token = (await sign_in(stub)).access_token

    failure = await fails(stub.Validate(auth_pb2.ValidateRequest(), metadata=metadata(token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    assert 'error="invalid_request"' in failure.challenge


async def test_gateway_prefixed_authorization_alone_is_not_a_credential(stub, user):
    """grpcgateway-authorization without authorization counts as no token."""
    token = (await sign_in(stub)).access_token

    failure = await fails(stub.Validate(
        auth_pb2.ValidateRequest(), metadata=(("grpcgateway-authorization", f"Bearer {token}"),)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_missing_token_challenge_has_no_error_code(stub):
    """No credentials at all: UNAUTHENTICATED and a challenge without error= (RFC 6750)."""
    failure = await fails(validate(stub, ""))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert failure.challenge == 'Bearer realm="authsvc"'


async def test_expiry_allows_the_leeway_and_no_more(stub, user, clock):
    """A token is accepted until exp + leeway, and TOKEN_EXPIRED from then on."""
    token = (await sign_in(stub)).access_token
    clock.advance(900 + 30 - 1)
    await validate(stub, token)
    clock.advance(1)

    failure = await fails(validate(stub, token))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")
    assert failure.challenge == ('Bearer realm="authsvc", error="invalid_token", '
                                 'error_description="The access token expired"')


async def test_token_not_yet_valid_beyond_leeway_is_invalid(stub, app, clock):
    """nbf and iat more than the leeway in the future are refused."""
    future = int(clock()) + 31

    failure = await fails(validate(stub, signed(app, clock, nbf=future, iat=future)))

    assert failure.reason == "TOKEN_INVALID"


async def test_revocation_is_seen_at_once(stub, user):
    """After Revoke, the session's access token is TOKEN_REVOKED on the next call."""
    signed_in = await sign_in(stub)
    await validate(stub, signed_in.access_token)  # now in the verified-token cache

    await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))

    failure = await fails(validate(stub, signed_in.access_token))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


def _forge_alg_none(token: str, alg: str) -> str:
    header, payload, _ = segments(token)
    return assemble({**header, "alg": alg}, payload)


def _forge_hs256_with_public_key(token: str, public_pem: bytes) -> str:
    header, payload, _ = segments(token)
    unsigned = assemble({**header, "alg": "HS256"}, payload)[:-1]
    mac = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64(mac)}"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_in_any_case_is_refused(stub, user, alg):
    """An unsigned token is TOKEN_INVALID whatever the case of 'none'."""
    token = (await sign_in(stub)).access_token

    failure = await fails(validate(stub, _forge_alg_none(token, alg)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_stripped_signature_is_refused(stub, user):
    """header.payload. with no signature is TOKEN_INVALID."""
    token = (await sign_in(stub)).access_token

    failure = await fails(validate(stub, token.rsplit(".", 1)[0] + "."))

    assert failure.reason == "TOKEN_INVALID"


async def test_tampered_payload_is_refused(stub, user):
    """Changing a claim breaks the signature."""
    token = (await sign_in(stub)).access_token
    header, payload, signature = segments(token)

    failure = await fails(validate(stub, assemble(header, {**payload, "sub": "admin"},
                                                  signature)))

    assert failure.reason == "TOKEN_INVALID"


async def test_hs256_keyed_with_the_public_key_is_refused(stub, app, user, clock):
    """Key confusion: an HMAC made with the public key as secret is TOKEN_INVALID."""
    token = (await sign_in(stub)).access_token
    public = app.keystore.ring.signer(clock()).public_key
    pems = [public.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo),
            json.dumps(app.keystore.ring.signer(clock()).jwk).encode()]

    for pem in pems:
        failure = await fails(validate(stub, _forge_hs256_with_public_key(token, pem)))
        assert failure.reason == "TOKEN_INVALID"


async def test_unknown_kid_is_refused(stub, app, user, clock):
    """A token signed by a key outside the ring is TOKEN_INVALID."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    now = int(clock())
    token = jwt.encode({"iss": "authsvc", "sub": user, "aud": "authsvc", "iat": now,
                        "nbf": now, "exp": now + 900, "jti": "j", "sid": "s"},
                       stranger, algorithm="ES256", headers={"kid": "stranger", "typ": "at+jwt"})

    failure = await fails(validate(stub, token))

    assert failure.reason == "TOKEN_INVALID"


async def test_refresh_token_presented_as_access_token_is_refused(stub, user):
    """An opaque refresh token is not an access token."""
    refresh_token = (await sign_in(stub)).refresh_token

    failure = await fails(validate(stub, refresh_token))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


@pytest.mark.parametrize("changes", [
    {"iss": "authsvc-evil"}, {"iss": "auth"}, {"aud": "other"}, {"aud": ["authsvc", "x"]},
    {"typ": "JWT"}, {"typ": None}, {"crit": ["exp"]},
    {"exp": None}, {"nbf": None}, {"iat": None}, {"jti": None}, {"sid": None}, {"sub": None},
    {"aud": None}, {"iss": None}, {"exp": "tomorrow"}, {"sub": 42}, {"sid": ""},
    {"scope": ["a", "b"]},
], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
async def test_claims_and_headers_are_strict(stub, app, clock, changes):
    """Wrong iss/aud/typ, a crit header, and missing or mistyped claims are refused."""
    failure = await fails(validate(stub, signed(app, clock, **changes)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_a_well_formed_foreign_session_is_accepted_only_if_signed_by_us(stub, app, clock):
    """The strict-claims fixture itself validates when nothing is changed."""
    response = await validate(stub, signed(app, clock))

    assert response.user_id == "u"


async def test_oversize_access_token_is_invalid_argument(stub):
    """An access_token over 8 KiB is INVALID_ARGUMENT naming the field."""
    failure = await fails(validate(stub, "a" * 8193))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["access_token"])


async def test_garbage_in_bearer_metadata_is_invalid(stub):
    """Random text as a bearer token is TOKEN_INVALID."""
    failure = await fails(stub.Validate(auth_pb2.ValidateRequest(), metadata=bearer("abc.def")))

    assert failure.reason == "TOKEN_INVALID"
