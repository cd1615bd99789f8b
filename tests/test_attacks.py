"""The attack suite: what an attacker tries, and the exact answer each attempt gets.

Every case asserts the gRPC status, the ErrorInfo reason, and that nothing
in the database changed except audit rows (users, sessions, refresh_tokens
and signing_keys are compared row for row before and after; auth_events and
the throttling counters are the promised side effects of a failure).

The forged-token catalogue follows jwt_tool's attack list (alg none, null and
psychic signatures, HMAC/public-key confusion including CVE-2022-29217's
OpenSSH keys, embedded jwk, jku/x5u spoofing, kid injection) and RFC 8725.
Those cases share one server (``kit``): none may change its state, which is
exactly what they assert. The other cases get a fresh database each.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import statistics
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, get_default_algorithms

from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from .attack_helpers import (
    DELETE,
    BackgroundService,
    DecoyListener,
    Parts,
    b64,
    encode_json,
    public_key_encodings,
    refused,
    snapshot,
    without_throttling,
)
from .helpers import PASSWORD, bearer, fails, sign_in

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
INVALID_TOKEN = (UNAUTHENTICATED, "TOKEN_INVALID")
INVALID_TOKEN_CHALLENGE = ('Bearer realm="authsvc", error="invalid_token", '
                           'error_description="The access token is invalid"')
INVALID_REQUEST_CHALLENGE = ('Bearer realm="authsvc", error="invalid_request", '
                             'error_description="The authorization metadata must hold '
                             'exactly one Bearer token"')
NO_TOKEN_CHALLENGE = 'Bearer realm="authsvc"'
# P-256's group order n: r = s = n is as degenerate as r = s = 0.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- the shared server for forged tokens -------------------------------------------------


@dataclasses.dataclass
class Kit:
    """A running authsvc with alice and bob signed in, and an attacker's own key."""

    service: BackgroundService
    alice: auth_pb2.SignInResponse
    bob: auth_pb2.SignInResponse
    attacker: ec.EllipticCurvePrivateKey

    @property
    def stub(self) -> auth_pb2_grpc.AuthStub:
        return self.service.stub

    @property
    def now(self) -> int:
        return int(self.service.clock())

    @property
    def signer(self) -> Any:
        return self.service.app.keystore.ring.signer(self.service.clock())

    @property
    def genuine(self) -> Parts:
        """Alice's real access token, taken apart."""
        return Parts.of(self.alice.access_token)

    def ours(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A token signed with the service's own key: alice's claims, in a session of
        its own, with ``claims`` and header members ``header`` changed (DELETE removes
        one). Only the service can make these: they test its strictness, not forgery."""
        parts = self.genuine.with_claims(sid=str(uuid.uuid4())).with_claims(**claims)
        parts = parts.with_header(**(header or {}))
        return parts.signed(self.signer.alg, self.signer.private_key)

    def sign_in_refused(self, **request: str) -> Any:
        return refused(lambda: self.stub.SignIn(auth_pb2.SignInRequest(**request)))

    def fetchval(self, sql: str, *args: Any) -> Any:
        async def fetch() -> Any:
            async with self.service.app.db.connection() as conn:
                return await conn.fetchval(sql, *args)

        return self.service.run(fetch())

    def present(self, token: str) -> Any:
        """Validate ``token``, then offer it to Revoke (RFC 7009: always OK); assert that
        neither changed the database; return what Validate said."""
        before = self.service.snapshot()
        failure = refused(lambda: self.stub.Validate(
            auth_pb2.ValidateRequest(access_token=token), timeout=10))
        self.stub.Revoke(auth_pb2.RevokeRequest(token=token), timeout=10)
        assert self.service.snapshot() == before, "an attack changed the database"
        return failure


@pytest.fixture(scope="module")
def kit(pg_admin_url: str, template_name: str) -> Any:
    with BackgroundService(pg_admin_url, template_name) as service:
        accounts = service.app.accounts
        service.run(accounts.add("email", "alice@example.com", PASSWORD))
        service.run(accounts.add("email", "bob@example.com", PASSWORD))
        alice = service.stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                           password=PASSWORD))
        bob = service.stub.SignIn(auth_pb2.SignInRequest(email="bob@example.com",
                                                         password=PASSWORD))
        yield Kit(service, alice, bob, ec.generate_private_key(ec.SECP256R1()))


def assert_invalid(failure: Any) -> None:
    assert (failure.code, failure.reason) == INVALID_TOKEN
    assert failure.challenge == INVALID_TOKEN_CHALLENGE


# --- alg none, null and psychic signatures ----------------------------------------------

ENDINGS = {
    "trailing-dot": lambda kit: "",
    "original-signature": lambda kit: kit.genuine.signature,
    "zero-signature": lambda kit: b64(b"\0" * 64),
}


@pytest.mark.parametrize("ending", ENDINGS, ids=str)
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
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


@pytest.mark.parametrize("signature", ["", "AA", "AAAA"], ids=["empty", "one-zero-byte",
                                                               "three-zero-bytes"])
def test_null_signature_is_refused(kit, signature):
    """The genuine header and payload with an empty or null signature are TOKEN_INVALID."""
    token = kit.genuine.compact(signature)

    failure = kit.present(token)

    assert_invalid(failure)


PSYCHIC = {
    "raw-64-zero-bytes": b64(b"\0" * 64),
    "der-r0-s0": "MAYCAQACAQA",  # jwt_tool's CVE-2022-21449 signature: DER SEQUENCE{0, 0}
    "raw-r-s-equal-order": b64(P256_ORDER.to_bytes(32, "big") * 2),
}


@pytest.mark.parametrize("signature", PSYCHIC.values(), ids=PSYCHIC.keys())
def test_psychic_signature_is_refused(kit, signature):
    """CVE-2022-21449: ECDSA r = s = 0 (or n) verifies nothing, whatever the claims."""
    token = kit.genuine.with_claims(sub=kit.bob.user_id, scope="admin").compact(signature)

    failure = kit.present(token)

    assert_invalid(failure)


# --- key confusion: HMAC keyed with our public key --------------------------------------

ENCODINGS = ["pem", "pem-no-newline", "jwk-json", "openssh", "der"]


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


@pytest.mark.parametrize("alg", ["ES384", "ES512", "PS256", "RS256", "EdDSA", "ES256K"])
def test_another_asymmetric_algorithm_is_refused(kit, alg):
    """An alg other than the key's own, even asymmetric, is TOKEN_INVALID before any
    signature check (the token's alg is never trusted)."""
    token = kit.genuine.with_header(alg=alg).compact()

    failure = kit.present(token)

    assert_invalid(failure)


# --- keys the token brings along --------------------------------------------------------


def _attacker_jwk(kit: Kit, kid: str) -> dict[str, Any]:
    jwk = ECAlgorithm.to_jwk(kit.attacker.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


@pytest.mark.parametrize("kid", ["ours", "attackers", "absent"])
def test_embedded_jwk_is_ignored(kit, kid):
    """A jwk header carrying the attacker's key, signed by it, is TOKEN_INVALID."""
    kid_value = {"ours": kit.signer.kid, "attackers": "attacker-key", "absent": DELETE}[kid]
    parts = kit.genuine.with_claims(scope="admin").with_header(
        jwk=_attacker_jwk(kit, "attacker-key"), kid=kid_value)

    failure = kit.present(parts.signed("ES256", kit.attacker))

    assert_invalid(failure)


@pytest.mark.parametrize("member", ["jku", "x5u"])
@pytest.mark.parametrize("kid", ["ours", "attackers"])
def test_key_urls_are_never_fetched(kit, member, kid):
    """jku/x5u pointing at a listener the attacker runs: TOKEN_INVALID, and the listener
    receives no connection at all."""
    jwks = json.dumps({"keys": [_attacker_jwk(kit, "attacker-key")]}).encode()
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

KID_INJECTIONS = {
    # (kid, how the attacker signs: HMAC secret the injection would yield, or their key)
    "traversal-dev-null": ("../../../../../../../../dev/null", b""),
    "absolute-dev-null": ("/dev/null", b""),
    "traversal-etc-passwd": ("../../../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
    "sql-or-true": ("' OR 1=1 --", None),
    "sql-union-key": ("x' UNION SELECT 'key' --", b"key"),
    "command": ("key|/usr/bin/id", b"key"),
    "nul-after-our-kid": ("{ours}\x00../../dev/null", None),
    "our-kid-with-space": ("{ours} ", None),
    "our-kid-upper-case": ("{ours_upper}", None),
    "very-long": ("k" * 5000, None),
    "url": ("http://127.0.0.1:1/key", None),
}


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


KID_TYPES = {"number": 1, "array": ["{ours}"], "object": {"$ne": None}, "null": None,
             "empty": "", "true": True, "absent": DELETE}


@pytest.mark.parametrize("kid", KID_TYPES.values(), ids=KID_TYPES.keys())
def test_kid_that_is_not_a_nonempty_string_is_refused(kit, kid):
    """Even signed with our own key, a kid that is not a non-empty string is TOKEN_INVALID."""
    if kid == ["{ours}"]:
        kid = [kit.signer.kid]

    failure = kit.present(kit.ours(header={"kid": kid}))

    assert_invalid(failure)


# --- crit and other header members ------------------------------------------------------

HEADERS = {
    "crit-exp": {"crit": ["exp"]},
    "crit-empty": {"crit": []},
    "crit-b64-unencoded-payload": {"crit": ["b64"], "b64": False},
    "crit-unknown-extension": {"crit": ["x-evil"], "x-evil": True},
    "crit-as-string": {"crit": "exp"},
    "typ-jwt": {"typ": "JWT"},
    "typ-id-token": {"typ": "id_token+jwt"},
    "typ-absent": {"typ": DELETE},
    "typ-number": {"typ": 1},
    "header-zip-def": {"zip": "DEF"},
    "header-enc-jwe": {"enc": "A256GCM"},
}
# Members an implementation might honour but authsvc must refuse; zip and enc are JWE
# members a JWS verifier should not accept silently either.
REFUSED_HEADERS = {k: v for k, v in HEADERS.items() if not k.startswith("header-")}


@pytest.mark.parametrize("header", REFUSED_HEADERS.values(), ids=REFUSED_HEADERS.keys())
def test_crit_and_wrong_typ_are_refused(kit, header):
    """Any crit header (no extension is understood) or a typ other than at+jwt is
    TOKEN_INVALID, even under our own signature."""
    failure = kit.present(kit.ours(header=header))

    assert_invalid(failure)


# --- claims tampered after signing ------------------------------------------------------

TAMPERED = {
    "sub-other-user": lambda kit: {"sub": kit.bob.user_id},
    "sid-other-session": lambda kit: {"sid": kit.bob.session_id},
    "scope-escalated": lambda kit: {"scope": "admin"},
    "exp-extended": lambda kit: {"exp": kit.now + 365 * 86400},
    "jti-changed": lambda kit: {"jti": str(uuid.uuid4())},
    "aud-changed": lambda kit: {"aud": "payments"},
}


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


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "sid"])
def test_missing_required_claim_is_refused(kit, claim):
    """Each of exp iat nbf iss aud sub jti sid is required, even under our signature."""
    failure = kit.present(kit.ours(**{claim: DELETE}))

    assert_invalid(failure)


MISTYPED = {
    "exp-string": {"exp": "9999999999"},
    "exp-true": {"exp": True},
    "exp-null": {"exp": None},
    "exp-list": {"exp": [9999999999]},
    "exp-nan": {"exp": float("nan")},
    "exp-infinity": {"exp": float("inf")},
    "exp-beyond-year-9999": {"exp": 1e300},
    "iat-string": {"iat": "now"},
    "iat-nan": {"iat": float("nan")},
    "nbf-object": {"nbf": {}},
    "nbf-nan": {"nbf": float("nan")},
    "sub-number": {"sub": 42},
    "sub-empty": {"sub": ""},
    "sub-list": {"sub": ["a"]},
    "sub-too-long": {"sub": "u" * 129},
    "sid-number": {"sid": 1},
    "sid-empty": {"sid": ""},
    "jti-list": {"jti": []},
    "scope-number": {"scope": 7},
    "scope-list": {"scope": ["admin"]},
    "iss-list": {"iss": ["authsvc"]},
    "iss-null": {"iss": None},
    "aud-null": {"aud": None},
    "aud-object": {"aud": {"authsvc": True}},
}


@pytest.mark.parametrize("claims", MISTYPED.values(), ids=MISTYPED.keys())
def test_mistyped_claim_is_refused(kit, claims):
    """A claim of the wrong type (or a time that is not a finite instant protobuf can
    carry) is TOKEN_INVALID even under our signature, never INTERNAL."""
    failure = kit.present(kit.ours(**claims))

    assert_invalid(failure)


@pytest.mark.parametrize("iss", ["auth", "authsvc2", " authsvc", "authsvc ", "AUTHSVC",
                                 "", "authsvc\x00", "https://authsvc"])
def test_issuer_must_match_exactly(kit, iss):
    """iss that is a substring, superstring, or differs in case or space: TOKEN_INVALID."""
    failure = kit.present(kit.ours(iss=iss))

    assert_invalid(failure)


@pytest.mark.parametrize("aud", [["authsvc"], ["authsvc", "other"], ["other", "authsvc"], [],
                                 "other", "authsvc2", "auth", "AUTHSVC", ""],
                         ids=lambda a: json.dumps(a))
def test_audience_must_be_exactly_our_string(kit, aud):
    """aud as a list (even holding ours) or any other string is TOKEN_INVALID."""
    failure = kit.present(kit.ours(aud=aud))

    assert_invalid(failure)


# --- time claims around the leeway (30 s) -----------------------------------------------

TIMES = {
    # claim changes relative to now → expected reason (None: accepted)
    "exp-29s-ago": ({"exp": -29}, None),
    "exp-30s-ago": ({"exp": -30}, "TOKEN_EXPIRED"),
    "nbf-30s-ahead": ({"nbf": 30}, None),
    "nbf-31s-ahead": ({"nbf": 31}, "TOKEN_INVALID"),
    "iat-30s-ahead": ({"iat": 30, "nbf": 0}, None),
    "iat-31s-ahead": ({"iat": 31, "nbf": 0}, "TOKEN_INVALID"),
    "exp-before-iat": ({"iat": 0, "nbf": 0, "exp": -3600}, "TOKEN_EXPIRED"),
    "fractional-exp-just-inside": ({"exp": -29.5}, None),
}


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

def _with_header_segment(raw: bytes) -> Any:
    """A token whose header segment encodes ``raw``, followed by alice's payload and
    signature."""
    return lambda kit: f"{b64(raw)}.{kit.alice.access_token.split('.', 1)[1]}"


SHAPES = {
    "empty-segments": lambda kit: "..",
    "four-segments": lambda kit: kit.alice.access_token + ".AAAA",
    "five-segments-jwe-shaped": lambda kit: "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0....",
    "not-base64": lambda kit: "!!!.@@@.###",
    "header-not-json": _with_header_segment(b"not json"),
    "header-json-array": _with_header_segment(b"[]"),
    "header-json-string": _with_header_segment(b'"at+jwt"'),
    "header-deeply-nested": _with_header_segment(b"[" * 1500 + b"]" * 1500),
    "header-huge-number": _with_header_segment(b'{"kid": 1' + b"0" * 4000 + b"}"),
    "header-invalid-utf8": _with_header_segment(b'{"kid": "\xff\xfe"}'),
    "header-duplicate-alg": _with_header_segment(b'{"alg":"ES256","alg":"none","typ":"at+jwt"}'),
    "payload-not-json": lambda kit: kit.alice.access_token.split(".")[0] + ".bm90IGpzb24.AAAA",
    "whitespace-around": lambda kit: f" {kit.alice.access_token} ",
    "newline-inside": lambda kit: kit.alice.access_token.replace(".", ".\n", 1),
    "non-ascii": lambda kit: "é.ü.ß",
    "exactly-8192-chars": lambda kit: kit.genuine.with_header(
        pad="p" * 8192).compact()[:8192],
}


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


# --- SignIn -----------------------------------------------------------------------------


@pytest.fixture
def settings(settings, request):
    """The suite's settings without throttling; indirect parametrisation picks the
    signing algorithm."""
    return dataclasses.replace(without_throttling(settings),
                               signing_alg=getattr(request, "param", "ES256"))


@pytest.mark.parametrize("kind", ["email", "phone", "username"])
def test_unknown_user_wrong_password_and_disabled_account_answer_alike(kit, kind):
    """Unknown identifier, wrong password and disabled account (with its right password)
    get identical answers: code, reason, message, details and trailers."""
    known = {"email": "dave@example.com", "phone": "+14155550123", "username": "dave"}[kind]
    unknown = {"email": "nobody@example.com", "phone": "+14155550199",
               "username": "nobody"}[kind]
    disabled = {"email": "carol@example.com", "phone": "+14155550177",
                "username": "carol"}[kind]
    accounts = kit.service.app.accounts
    kit.service.run(accounts.add(kind, known, PASSWORD))
    kit.service.run(accounts.disable(kit.service.run(accounts.add(kind, disabled, PASSWORD))))
    before = kit.service.snapshot()

    answers = [kit.sign_in_refused(**{kind: who}, password=password)
               for who, password in [(unknown, PASSWORD), (known, "wrong password"),
                                     (disabled, PASSWORD)]]

    assert answers[0] == answers[1] == answers[2]
    assert (answers[0].code, answers[0].reason, answers[0].message) == (
        UNAUTHENTICATED, "INVALID_CREDENTIALS", "The identifier or password is wrong.")
    assert answers[0].challenge == NO_TOKEN_CHALLENGE
    assert kit.service.snapshot() == before


async def test_unknown_user_and_wrong_password_take_the_same_time(settings, database_url, clock):
    """With production argon2 parameters, the median time of a sign-in for an unknown
    user and for a wrong password are within a factor of two of each other."""
    real = dataclasses.replace(settings, argon2_profile="owasp", hash_threads=1)
    async with running_app(real, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        await app.accounts.disable(await app.accounts.add("email", "carol@example.com",
                                                          PASSWORD))
        attempts = {"unknown": ("nobody@example.com", PASSWORD),
                    "wrong": ("alice@example.com", "wrong password"),
                    "disabled": ("carol@example.com", PASSWORD)}
        times: dict[str, list[float]] = {name: [] for name in attempts}
        await fails(stub.SignIn(auth_pb2.SignInRequest(email="warm@example.com",
                                                       password=PASSWORD)))

        for _ in range(15):  # interleaved, so drift in machine load hits all alike
            for name, (email, password) in attempts.items():
                started = time.perf_counter()
                await fails(stub.SignIn(auth_pb2.SignInRequest(email=email, password=password)))
                times[name].append(time.perf_counter() - started)

    medians = {name: statistics.median(values) for name, values in times.items()}
    for name in ("unknown", "disabled"):
        assert 0.5 < medians[name] / medians["wrong"] < 2.0, medians


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


NEAR_MISSES = {
    "trailing-space": PASSWORD + " ",
    "leading-space": " " + PASSWORD,
    "last-char-dropped": PASSWORD[:-1],
    "trailing-newline": PASSWORD + "\n",
    "trailing-crlf": PASSWORD + "\r\n",
    "trailing-tab": PASSWORD + "\t",
    "trailing-nul": PASSWORD + "\x00",
    "byte-order-mark": "\ufeff" + PASSWORD,
    "upper-case": PASSWORD.upper(),
}


@pytest.mark.parametrize("password", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_passwords_are_neither_trimmed_nor_normalised(kit, password):
    """A password differing from the real one by whitespace, NUL or case is wrong."""
    before = kit.service.snapshot()

    failure = kit.sign_in_refused(email="alice@example.com", password=password)

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert kit.service.snapshot() == before


@pytest.mark.parametrize("prefix", [72, 1023], ids=["bcrypt-72", "all-but-one"])
def test_long_passwords_are_not_truncated(kit, prefix):
    """Only the whole of a long password signs in: a prefix of it is wrong (no bcrypt-style
    truncation at 72 bytes, nor anywhere else)."""
    password = "".join(chr(0x41 + i % 26) for i in range(1024))
    email = f"long-{prefix}@example.com"
    kit.service.run(kit.service.app.accounts.add("email", email, password))
    before = kit.service.snapshot()

    failure = kit.sign_in_refused(email=email, password=password[:prefix])

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert kit.service.snapshot() == before


CORRUPT_HASHES = {
    "garbage": lambda good: "garbage",
    "empty": lambda good: "",
    "truncated": lambda good: good[:-10],
    "bit-flipped-digest": lambda good: good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1],
    "bcrypt-format": lambda good: "$2b$12$" + "a" * 53,
    "argon2-zero-parallelism": lambda good: "$argon2id$v=19$m=65536,t=2,p=0$c2FsdHNhbHQ$aGFzaA",
    "argon2-unknown-version": lambda good: good.replace("v=19", "v=99"),
    "plaintext-password": lambda good: PASSWORD,
}


@pytest.mark.parametrize("corrupt", CORRUPT_HASHES.values(), ids=CORRUPT_HASHES.keys())
def test_corrupt_stored_hash_is_invalid_credentials(kit, corrupt):
    """A damaged hash in the users table answers INVALID_CREDENTIALS (never INTERNAL) and
    creates no session, even for the right password."""
    email = f"corrupt-{uuid.uuid4().hex[:8]}@example.com"
    user_id = kit.service.run(kit.service.app.accounts.add("email", email, PASSWORD))
    good = kit.fetchval("SELECT password_hash FROM users WHERE id = $1::text::uuid", user_id)
    kit.fetchval("UPDATE users SET password_hash = $2 WHERE id = $1::text::uuid", user_id,
                 corrupt(good))
    before = kit.service.snapshot()

    failure = kit.sign_in_refused(email=email, password=PASSWORD)

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert kit.service.snapshot() == before


# --- refresh reuse and concurrency ------------------------------------------------------


def refresh(stub, token):
    return stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token))


async def _tokens_of(database_url: str, session_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT id, parent_id, spent_at FROM refresh_tokens"
                                " WHERE session_id = $1::text::uuid ORDER BY id", session_id)
    finally:
        await conn.close()


async def test_twenty_concurrent_refreshes_then_reuse_after_grace(stub, user, database_url,
                                                                   clock):
    """Twenty concurrent refreshes of one token all get the one successor; presenting the
    spent token after the grace interval is REFRESH_TOKEN_REUSED and revokes the session."""
    first = await sign_in(stub)

    results = await asyncio.gather(*(refresh(stub, first.refresh_token) for _ in range(20)))

    assert len({r.refresh_token for r in results}) == 1
    chain = await _tokens_of(database_url, first.session_id)
    assert [(t["parent_id"], t["spent_at"] is None) for t in chain] == [
        (None, False), (chain[0]["id"], True)]
    clock.advance(11)
    reused = await fails(refresh(stub, first.refresh_token))
    assert (reused.code, reused.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    successor = await fails(refresh(stub, results[0].refresh_token))
    assert successor.reason == "REFRESH_TOKEN_INVALID"
    access = await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=results[0].access_token)))
    assert access.reason == "TOKEN_REVOKED"


async def test_concurrent_reuse_is_detected_once_and_never_errors(stub, app, user,
                                                                   database_url, clock):
    """Twenty concurrent presentations of a spent token after grace: each answer is
    REUSED or INVALID (never INTERNAL), one reuse event, the session revoked, no new token."""
    first = await sign_in(stub)
    await refresh(stub, first.refresh_token)
    clock.advance(11)
    tokens_before = await _tokens_of(database_url, first.session_id)

    answers = await asyncio.gather(*(fails(refresh(stub, first.refresh_token))
                                     for _ in range(20)))

    reasons = [(a.code, a.reason) for a in answers]
    assert set(reasons) <= {(UNAUTHENTICATED, "REFRESH_TOKEN_REUSED"),
                            (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")}
    assert (UNAUTHENTICATED, "REFRESH_TOKEN_REUSED") in reasons
    async with app.db.connection() as conn:
        events = await conn.fetchval(
            "SELECT count(*) FROM auth_events WHERE kind = 'refresh.reuse_detected'")
        revoked = await conn.fetchval("SELECT revoked_at IS NOT NULL FROM sessions")
    assert (events, revoked) == (1, True)
    assert await _tokens_of(database_url, first.session_id) == tokens_before


async def test_thief_and_owner_racing_within_grace_cannot_fork_the_session(stub, user,
                                                                            database_url):
    """The spent token and its successor refreshed concurrently, ten times each: the
    session's tokens stay one linear chain with one unspent head."""
    first = await sign_in(stub)
    second = await refresh(stub, first.refresh_token)

    answers = await asyncio.gather(
        *(refresh(stub, t) for _ in range(10)
          for t in (first.refresh_token, second.refresh_token)), return_exceptions=True)

    for answer in answers:
        assert not isinstance(answer, grpc.RpcError) or answer.code() == UNAUTHENTICATED
    await _assert_linear_chains(database_url)


@pytest.mark.parametrize("mangle", [
    lambda t: t + "A", lambda t: t[:-1], lambda t: t.swapcase(), lambda t: t + "=",
    lambda t: "A" * 43, lambda t: " " + t,
], ids=["appended", "truncated", "case-flipped", "padded", "same-length-guess", "leading-space"])
def test_near_miss_refresh_token_is_invalid_and_harmless(kit, mangle):
    """A refresh token altered in any way is REFRESH_TOKEN_INVALID and changes nothing."""
    token = kit.alice.refresh_token
    before = kit.service.snapshot()

    failure = refused(lambda: kit.stub.Refresh(auth_pb2.RefreshRequest(
        refresh_token=mangle(token))))

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    assert kit.service.snapshot() == before


# --- the database dying mid-rotation ----------------------------------------------------


async def _assert_linear_chains(database_url: str) -> None:
    """Every session: at least one token, one root, at most one unspent token, no two
    children of one parent, every token's parent in the same session; no orphan token."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval(
            "SELECT count(*) FROM refresh_tokens t LEFT JOIN sessions s ON s.id = t.session_id"
            " WHERE s.id IS NULL") == 0
        rows = await conn.fetch(
            "SELECT s.id, count(t.id) AS tokens,"
            "       count(*) FILTER (WHERE t.parent_id IS NULL) AS roots,"
            "       count(*) FILTER (WHERE t.spent_at IS NULL) AS unspent,"
            "       count(DISTINCT t.parent_id) AS parents,"
            "       count(t.parent_id) AS children"
            "  FROM sessions s LEFT JOIN refresh_tokens t ON t.session_id = s.id GROUP BY s.id")
        for r in rows:
            assert r["tokens"] >= 1 and r["roots"] == 1, dict(r)
            assert r["unspent"] <= 1 and r["parents"] == r["children"], dict(r)
        assert await conn.fetchval(
            "SELECT count(*) FROM refresh_tokens c JOIN refresh_tokens p ON p.id = c.parent_id"
            " WHERE p.session_id <> c.session_id OR p.spent_at IS NULL") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize("blocked_at", ["refresh_tokens", "auth_events"],
                         ids=["before-spending", "after-inserting-the-successor"])
async def test_database_dying_mid_rotation_leaves_no_orphan_and_no_half_session(
        stub, app, user, database_url, pg_admin_url, blocked_at):
    """Refreshes and sign-ins caught inside their transactions when every connection is
    killed and the database refuses new ones: each caller gets UNAVAILABLE, nothing of
    theirs is committed, and once the database is back every old token still works."""
    signed_in = [await sign_in(stub) for _ in range(6)]
    await _assert_linear_chains(database_url)
    before = await snapshot(database_url)
    name = urlsplit(database_url).path.lstrip("/")
    locker = await asyncpg.connect(database_url)
    lock = locker.transaction()
    await lock.start()
    await locker.execute(f"LOCK TABLE {blocked_at} IN EXCLUSIVE MODE")
    calls = [asyncio.ensure_future(refresh(stub, s.refresh_token)) for s in signed_in]
    if blocked_at == "auth_events":  # a sign-in blocks after inserting session and token
        calls += [asyncio.ensure_future(sign_in(stub)) for _ in range(3)]
    admin = await asyncpg.connect(pg_admin_url)

    try:
        await _wait_for_waiters(admin, name, len(calls))
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1 AND pid <> $2", name, locker.get_server_pid())
        answers = await asyncio.gather(*calls, return_exceptions=True)
        await lock.rollback()
        during = {t: [tuple(r.values()) for r in await locker.fetch(
            f"SELECT * FROM {t} ORDER BY {k}")] for t, k in  # noqa: S608
            (("users", "id"), ("sessions", "id"), ("refresh_tokens", "id"),
             ("signing_keys", "kid"))}
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await locker.close()

    assert [a.code() if isinstance(a, grpc.RpcError) else a for a in answers] == [
        grpc.StatusCode.UNAVAILABLE] * len(calls)
    assert during == before
    await _assert_linear_chains(database_url)
    retried = [await _eventually(lambda s=s: refresh(stub, s.refresh_token)) for s in signed_in]
    assert [r.session_id for r in retried] == [s.session_id for s in signed_in]
    await _assert_linear_chains(database_url)


async def _wait_for_waiters(admin: asyncpg.Connection, database: str, count: int) -> None:
    """Until ``count`` backends of ``database`` wait for a lock (at most 10 s)."""
    deadline = time.monotonic() + 10
    waiting = 0
    while time.monotonic() < deadline:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            " AND wait_event_type = 'Lock'", database)
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {waiting} of {count} calls reached the lock")


async def _eventually(call: Any, seconds: float = 10) -> Any:
    """The RPC's answer once the pool has reconnected (UNAVAILABLE is retried)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# --- a stolen signing key after rotation ------------------------------------------------


LIFETIME_GAP = ("tokens.verify accepts any exp - iat, and a cache hit never re-checks that "
                "the signing key is still published; see SECURITY.md, known gaps")


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
