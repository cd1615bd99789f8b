"""Forged tokens: what jwt_tool tries against a JWT verifier, and the exact answer each
attempt gets from Validate.

The catalogue (``catalogue.py``) follows jwt_tool's attack list (alg none, null and
psychic signatures, HMAC/public-key confusion including CVE-2022-29217's
OpenSSH keys, embedded jwk, jku/x5u spoofing, kid injection) and RFC 8725.
The cases share one server per module (``kit``): none may change its state,
which is exactly what they assert (users, sessions, refresh_tokens and
signing_keys are compared row for row before and after each).
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD
from .attack_helpers import DELETE, BackgroundService, DecoyListener, b64, public_key_encodings
from .catalogue import (
    ENCODINGS,
    ENDINGS,
    KID_INJECTIONS,
    KID_TYPES,
    NONE_ALGORITHMS,
    NULL_SIGNATURES,
    OTHER_ALGORITHMS,
    PSYCHIC,
    REFUSED_HEADERS,
    attacker_jwk,
)
from .kit import Kit, assert_invalid

# --- alg none, null and psychic signatures ----------------------------------------------


@pytest.mark.parametrize("ending", ENDINGS, ids=str)
@pytest.mark.parametrize("alg", NONE_ALGORITHMS)
def test_alg_none_is_refused(kit, alg, ending):
    """An unsigned token is TOKEN_INVALID whatever the case of "none" and however it ends."""
    token = kit.genuine.with_header(alg=alg).compact(ENDINGS[ending](kit))

    failure = kit.present(token)

    assert_invalid(failure)


@pytest.mark.parametrize("alg", ["none", "ES256"])
def test_two_segment_token_without_signature_is_refused(kit, alg):
    """header.payload with no signature segment at all is TOKEN_INVALID."""
    token = kit.genuine.with_header(alg=alg).signing_input()

    failure = kit.present(token)

    assert_invalid(failure)


@pytest.mark.parametrize("signature", NULL_SIGNATURES.values(), ids=NULL_SIGNATURES.keys())
def test_null_signature_is_refused(kit, signature):
    """The genuine header and payload with an empty or null signature are TOKEN_INVALID."""
    token = kit.genuine.compact(signature)

    failure = kit.present(token)

    assert_invalid(failure)


@pytest.mark.parametrize("signature", PSYCHIC.values(), ids=PSYCHIC.keys())
def test_psychic_signature_is_refused(kit, signature):
    """CVE-2022-21449: ECDSA r = s = 0 (or n) verifies nothing, whatever the claims."""
    token = kit.genuine.with_claims(sub=kit.bob.user_id, scope="admin").compact(signature)

    failure = kit.present(token)

    assert_invalid(failure)


# --- key confusion: HMAC keyed with our public key --------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("hmac_alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_our_public_key_is_refused(kit, hmac_alg, encoding):
    """Key confusion (incl. CVE-2022-29217's OpenSSH key): HS* made with the published
    public key as secret, under our own kid, is TOKEN_INVALID."""
    secret = public_key_encodings(kit.signer.public_key, kit.signer.jwk)[encoding]
    token = kit.genuine.with_claims(scope="admin").hmac_signed(hmac_alg, secret)

    failure = kit.present(token)

    assert_invalid(failure)


def test_hmac_keyed_with_the_published_jwks_document_is_refused(kit):
    """The GetJwks answer itself, serialised, is no HMAC secret either."""
    jwks = kit.stub.GetJwks(auth_pb2.GetJwksRequest())
    document = json.dumps({"keys": [{f.name: v for f, v in k.ListFields()}
                                    for k in jwks.keys]}).encode()
    token = kit.genuine.hmac_signed("HS256", document)

    failure = kit.present(token)

    assert_invalid(failure)


@pytest.fixture(scope="module", params=["EdDSA", "RS256"])
def other_kit(request, pg_admin_url: str, template_name: str) -> Any:
    """A server signing with EdDSA or RS256, alice signed in."""
    with BackgroundService(pg_admin_url, template_name, signing_alg=request.param) as service:
        service.run(service.app.accounts.add("email", "alice@example.com", PASSWORD))
        alice = service.stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                           password=PASSWORD))
        yield Kit(service, alice, alice, ec.generate_private_key(ec.SECP256R1()))


@pytest.mark.parametrize("encoding", ["pem", "openssh", "jwk-json"])
def test_hmac_confusion_fails_for_every_signing_algorithm(other_kit, encoding):
    """With EdDSA or RS256 keys too, HS256 keyed with the public key is TOKEN_INVALID."""
    signer = other_kit.signer
    secret = public_key_encodings(signer.public_key, signer.jwk)[encoding]
    token = other_kit.genuine.with_claims(scope="admin").hmac_signed("HS256", secret)

    failure = other_kit.present(token)

    assert_invalid(failure)


def test_our_own_algorithm_with_a_foreign_key_is_refused(kit):
    """ES256 under our kid but signed by the attacker's key is TOKEN_INVALID."""
    token = kit.genuine.with_claims(scope="admin").signed("ES256", kit.attacker)

    failure = kit.present(token)

    assert_invalid(failure)


@pytest.mark.parametrize("alg", OTHER_ALGORITHMS)
def test_another_asymmetric_algorithm_is_refused(kit, alg):
    """An alg other than the key's own, even asymmetric, is TOKEN_INVALID before any
    signature check (the token's alg is never trusted)."""
    token = kit.genuine.with_header(alg=alg).compact()

    failure = kit.present(token)

    assert_invalid(failure)


# --- keys the token brings along --------------------------------------------------------


@pytest.mark.parametrize("kid", ["ours", "attackers", "absent"])
def test_embedded_jwk_is_ignored(kit, kid):
    """A jwk header carrying the attacker's key, signed by it, is TOKEN_INVALID."""
    kid_value = {"ours": kit.signer.kid, "attackers": "attacker-key", "absent": DELETE}[kid]
    parts = kit.genuine.with_claims(scope="admin").with_header(
        jwk=attacker_jwk(kit, "attacker-key"), kid=kid_value)

    failure = kit.present(parts.signed("ES256", kit.attacker))

    assert_invalid(failure)


@pytest.mark.parametrize("member", ["jku", "x5u"])
@pytest.mark.parametrize("kid", ["ours", "attackers"])
def test_key_urls_are_never_fetched(kit, member, kid):
    """jku/x5u pointing at a listener the attacker runs: TOKEN_INVALID, and the listener
    receives no connection at all."""
    jwks = json.dumps({"keys": [attacker_jwk(kit, "attacker-key")]}).encode()
    with DecoyListener(jwks) as decoy:
        parts = kit.genuine.with_claims(scope="admin").with_header(
            **{member: decoy.url("/.well-known/jwks.json")},
            kid=kit.signer.kid if kid == "ours" else "attacker-key")

        failure = kit.present(parts.signed("ES256", kit.attacker))
        time.sleep(0.2)  # a fetch made after answering would still be caught

    assert_invalid(failure)
    assert decoy.connections == 0


def test_embedded_x5c_certificate_is_ignored(kit):
    """An x5c chain holding the attacker's self-signed certificate is TOKEN_INVALID."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authsvc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(kit.attacker.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(kit.attacker, hashes.SHA256()))
    x5c = [b64(cert.public_bytes(serialization.Encoding.DER))]
    parts = kit.genuine.with_claims(scope="admin").with_header(x5c=x5c)

    failure = kit.present(parts.signed("ES256", kit.attacker))

    assert_invalid(failure)


# --- kid traversal and injection --------------------------------------------------------


@pytest.mark.parametrize("case", KID_INJECTIONS.values(), ids=KID_INJECTIONS.keys())
def test_kid_injection_is_refused(kit, case):
    """A kid that names a file, SQL, a URL, our kid with junk, or is huge: TOKEN_INVALID."""
    template, secret = case
    kid = template.format(ours=kit.signer.kid, ours_upper=kit.signer.kid.upper())
    parts = kit.genuine.with_claims(scope="admin").with_header(kid=kid)
    token = (parts.signed("ES256", kit.attacker) if secret is None
             else parts.hmac_signed("HS256", secret))

    failure = kit.present(token)

    assert_invalid(failure)


@pytest.mark.parametrize("kid", KID_TYPES.values(), ids=KID_TYPES.keys())
def test_kid_that_is_not_a_nonempty_string_is_refused(kit, kid):
    """Even signed with our own key, a kid that is not a non-empty string is TOKEN_INVALID."""
    if kid == ["{ours}"]:
        kid = [kit.signer.kid]

    failure = kit.present(kit.ours(header={"kid": kid}))

    assert_invalid(failure)


# --- crit and other header members ------------------------------------------------------


@pytest.mark.parametrize("header", REFUSED_HEADERS.values(), ids=REFUSED_HEADERS.keys())
def test_crit_and_wrong_typ_are_refused(kit, header):
    """Any crit header (no extension is understood) or a typ other than at+jwt is
    TOKEN_INVALID, even under our own signature."""
    failure = kit.present(kit.ours(header=header))

    assert_invalid(failure)

