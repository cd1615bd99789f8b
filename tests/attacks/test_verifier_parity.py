"""Both verifiers share one verification function and refuse exactly the same tokens.

authsvc's Validate and the LocalVerifier both verify with
``authsvc.core.verification.TokenCheck``. Every token of the forged-token
catalogue (``catalogue.py``), and the ordinary ones around it (good, expired,
living longer than the access-token lifetime, a refresh token, a revoked
session's), is offered to Validate through the stub and to a LocalVerifier
following the same server, configured with that server's issuer, audience,
leeway and access-token lifetime and reading the same clock: each gets the same
outcome from both, the ErrorInfo reason from Validate equal to the reason of the
exception the LocalVerifier raises, or OK for the same session from both.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from jwt.algorithms import get_default_algorithms

from authsvc.v1 import auth_pb2
from authsvc.verifiers import LocalVerifier

from ..conftest import watch_token
from ..helpers import PASSWORD, eventually_blocking, parse
from .attack_helpers import DELETE, b64, encode_json, public_key_encodings
from .catalogue import (
    ENCODINGS,
    ENDINGS,
    HEADERS,
    KID_INJECTIONS,
    KID_TYPES,
    MISTYPED,
    NONE_ALGORITHMS,
    NULL_SIGNATURES,
    OTHER_ALGORITHMS,
    PSYCHIC,
    REQUIRED_CLAIMS,
    SHAPES,
    TAMPERED,
    TIMES,
    WRONG_AUDIENCES,
    WRONG_ISSUERS,
    attacker_jwk,
)
from .kit import Kit

Build = Callable[[Kit], str]


# --- how each token of the catalogue is built (as its refusal test builds it) ------------


def _alg_none(kit: Kit, alg: str, ending: str) -> str:
    return kit.genuine.with_header(alg=alg).compact(ENDINGS[ending](kit))


def _hmac_keyed_with_our_public_key(kit: Kit, alg: str, encoding: str) -> str:
    secret = public_key_encodings(kit.signer.public_key, kit.signer.jwk)[encoding]
    return kit.genuine.with_claims(scope="admin").hmac_signed(alg, secret)


def _hmac_keyed_with_the_jwks_document(kit: Kit) -> str:
    jwks = kit.stub.GetJwks(auth_pb2.GetJwksRequest())
    document = json.dumps({"keys": [{f.name: v for f, v in k.ListFields()}
                                    for k in jwks.keys]}).encode()
    return kit.genuine.hmac_signed("HS256", document)


def _embedded_jwk(kit: Kit, kid: str) -> str:
    kid_value = {"ours": kit.signer.kid, "attackers": "attacker-key", "absent": DELETE}[kid]
    parts = kit.genuine.with_claims(scope="admin").with_header(
        jwk=attacker_jwk(kit, "attacker-key"), kid=kid_value)
    return parts.signed("ES256", kit.attacker)


def _key_url(kit: Kit, member: str, kid: str) -> str:
    parts = kit.genuine.with_claims(scope="admin").with_header(
        **{member: "http://127.0.0.1:1/.well-known/jwks.json"},
        kid=kit.signer.kid if kid == "ours" else "attacker-key")
    return parts.signed("ES256", kit.attacker)


def _kid_injection(kit: Kit, template: str, secret: bytes | None) -> str:
    kid = template.format(ours=kit.signer.kid, ours_upper=kit.signer.kid.upper())
    parts = kit.genuine.with_claims(scope="admin").with_header(kid=kid)
    return (parts.signed("ES256", kit.attacker) if secret is None
            else parts.hmac_signed("HS256", secret))


def _kid_of_type(kit: Kit, kid: Any) -> str:
    return kit.ours(header={"kid": [kit.signer.kid] if kid == ["{ours}"] else kid})


def _times(kit: Kit, offsets: dict[str, float]) -> str:
    claims: dict[str, Any] = {"iat": kit.now, "nbf": kit.now, "exp": kit.now + 900}
    claims.update({name: kit.now + offset for name, offset in offsets.items()})
    return kit.ours(**claims)


def _payload_not_an_object(kit: Kit) -> str:
    signer = kit.signer
    header = {"alg": signer.alg, "kid": signer.kid, "typ": "at+jwt"}
    signing_input = f"{encode_json(header)}.{encode_json(['not', 'claims'])}"
    signature = get_default_algorithms()[signer.alg].sign(signing_input.encode(),
                                                          signer.private_key)
    return f"{signing_input}.{b64(signature)}"


def _catalogue() -> dict[str, Build]:
    """Every forged token of the refusal tests, and ordinary tokens around them."""
    p = functools.partial
    cases: dict[str, Build] = {
        "good-alice": lambda kit: kit.alice.access_token,
        "good-bob": lambda kit: kit.bob.access_token,
        "good-ours": lambda kit: kit.ours(),
        "empty": lambda kit: "",
        "refresh-token": lambda kit: kit.alice.refresh_token,
        "expired": lambda kit: kit.ours(iat=kit.now - 3600, nbf=kit.now - 3600,
                                        exp=kit.now - 2700),
        "lifetime-exactly-the-ttl": lambda kit: kit.ours(iat=kit.now, nbf=kit.now,
                                                         exp=kit.now + 900),
        "lifetime-one-second-over-the-ttl": lambda kit: kit.ours(iat=kit.now, nbf=kit.now,
                                                                 exp=kit.now + 901),
        "lifetime-ten-years": lambda kit: kit.ours(iat=kit.now, nbf=kit.now,
                                                   exp=kit.now + 10 * 365 * 86400),
        "foreign-key": lambda kit: kit.genuine.with_claims(scope="admin").signed(
            "ES256", kit.attacker),
        "hmac-jwks-document": _hmac_keyed_with_the_jwks_document,
        "transplanted-signature": lambda kit: ".".join(
            kit.alice.access_token.split(".")[:2] + kit.bob.access_token.split(".")[2:]),
        "spliced-payload": lambda kit: ".".join(
            [kit.alice.access_token.split(".")[0], kit.bob.access_token.split(".")[1],
             kit.alice.access_token.split(".")[2]]),
        "payload-not-an-object": _payload_not_an_object,
    }
    for alg in NONE_ALGORITHMS:
        for ending in ENDINGS:
            cases[f"alg-{alg}-{ending}"] = p(_alg_none, alg=alg, ending=ending)
    for alg in ("none", "ES256"):
        cases[f"two-segments-{alg}"] = lambda kit, alg=alg: kit.genuine.with_header(
            alg=alg).signing_input()
    for name, signature in NULL_SIGNATURES.items():
        cases[f"null-signature-{name}"] = lambda kit, s=signature: kit.genuine.compact(s)
    for name, signature in PSYCHIC.items():
        cases[f"psychic-{name}"] = lambda kit, s=signature: kit.genuine.with_claims(
            sub=kit.bob.user_id, scope="admin").compact(s)
    for hmac_alg in ("HS256", "HS384", "HS512"):
        for encoding in ENCODINGS:
            cases[f"{hmac_alg}-keyed-with-{encoding}"] = p(
                _hmac_keyed_with_our_public_key, alg=hmac_alg, encoding=encoding)
    for alg in OTHER_ALGORITHMS:
        cases[f"header-alg-{alg}"] = lambda kit, alg=alg: kit.genuine.with_header(
            alg=alg).compact()
    for kid in ("ours", "attackers", "absent"):
        cases[f"embedded-jwk-kid-{kid}"] = p(_embedded_jwk, kid=kid)
    for member in ("jku", "x5u"):
        for kid in ("ours", "attackers"):
            cases[f"{member}-kid-{kid}"] = p(_key_url, member=member, kid=kid)
    for name, (template, secret) in KID_INJECTIONS.items():
        cases[f"kid-{name}"] = p(_kid_injection, template=template, secret=secret)
    for name, kid in KID_TYPES.items():
        cases[f"kid-type-{name}"] = p(_kid_of_type, kid=kid)
    for name, header in HEADERS.items():
        cases[f"header-{name}"] = lambda kit, h=header: kit.ours(header=h)
    for name, change in TAMPERED.items():
        cases[f"tampered-{name}"] = lambda kit, c=change: kit.genuine.with_claims(
            **c(kit)).compact()
    for claim in REQUIRED_CLAIMS:
        cases[f"missing-{claim}"] = lambda kit, c=claim: kit.ours(**{c: DELETE})
    for name, claims in MISTYPED.items():
        cases[f"mistyped-{name}"] = lambda kit, c=claims: kit.ours(**c)
    for iss in WRONG_ISSUERS:
        cases[f"iss-{json.dumps(iss)}"] = lambda kit, i=iss: kit.ours(iss=i)
    for aud in WRONG_AUDIENCES:
        cases[f"aud-{json.dumps(aud)}"] = lambda kit, a=aud: kit.ours(aud=a)
    for name, (offsets, _reason) in TIMES.items():
        cases[f"times-{name}"] = p(_times, offsets=offsets)
    for name, shape in SHAPES.items():
        cases[f"shape-{name}"] = shape
    return cases


CATALOGUE = _catalogue()


# --- the two verifiers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def local(kit: Kit) -> Iterator[LocalVerifier]:
    """A LocalVerifier following the kit's server, with its settings and its clock."""
    settings = kit.service.settings
    token = kit.service.run(watch_token(kit.service.app))
    verifier = LocalVerifier(f"127.0.0.1:{kit.service.port}", issuer=settings.issuer,
                             audience=settings.audience, leeway=settings.clock_leeway,
                             max_token_lifetime=settings.access_token_ttl,
                             clock=kit.service.clock, access_token=lambda: token)
    assert verifier.start(), "the LocalVerifier got no keys or revocation snapshot"
    yield verifier
    verifier.close()


@pytest.fixture(scope="module")
def revoked(kit: Kit, local: LocalVerifier) -> str:
    """The access token of carol's session, revoked; once both verifiers know it."""
    kit.service.run(kit.service.app.accounts.add("email", "carol@example.com", PASSWORD))
    carol = kit.stub.SignIn(auth_pb2.SignInRequest(email="carol@example.com",
                                                   password=PASSWORD))
    kit.stub.Revoke(auth_pb2.RevokeRequest(token=carol.access_token))
    eventually_blocking(lambda: local.revocations.is_revoked(carol.session_id)
                        and validate(kit, carol.access_token) == "TOKEN_REVOKED", 10,
                        "the revocation to reach both verifiers", interval=0.01)
    return carol.access_token


def validate(kit: Kit, token: str) -> str:
    """What Validate says: ``OK <session id>`` or the ErrorInfo reason."""
    try:
        response = kit.stub.Validate(auth_pb2.ValidateRequest(access_token=token), timeout=10)
    except grpc.RpcError as error:
        failure = parse(error)
        return failure.reason or failure.code.name
    return f"OK {response.session_id}"


async def verify_locally(verifier: LocalVerifier, token: str) -> str:
    """What the LocalVerifier says: ``OK <session id>`` or the raised error's reason."""
    try:
        claims = await verifier.verify_async(token)
    except Exception as error:  # whatever it raises is the outcome compared
        return getattr(error, "reason", type(error).__name__)
    return f"OK {claims.session_id}"


# --- parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("build", CATALOGUE.values(), ids=CATALOGUE.keys())
async def test_both_verifiers_give_each_token_the_same_outcome(kit, local, build):
    """Validate and the LocalVerifier accept the same tokens (for the same session) and
    refuse the same tokens with the same reason."""
    token = build(kit)

    remote, in_process = validate(kit, token), await verify_locally(local, token)

    assert in_process == remote


async def test_both_verifiers_refuse_a_revoked_sessions_token_as_revoked(kit, local, revoked):
    """A token of a revoked session is TOKEN_REVOKED from Validate and the LocalVerifier."""
    remote, in_process = validate(kit, revoked), await verify_locally(local, revoked)

    assert (remote, in_process) == ("TOKEN_REVOKED", "TOKEN_REVOKED")


def test_the_catalogue_meets_every_outcome(kit):
    """The catalogue is no set of look-alikes: it holds tokens accepted, expired, invalid
    and missing, so parity covers every answer a token can get."""
    outcomes = {validate(kit, build(kit)).split()[0] for build in CATALOGUE.values()}

    assert outcomes == {"OK", "TOKEN_EXPIRED", "TOKEN_INVALID", "TOKEN_MISSING"}
