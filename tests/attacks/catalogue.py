"""The forged-token catalogue: jwt_tool's attack list and RFC 8725, as data.

Each table names a family of forgeries; its values (or the lambdas in it,
which take a ``Kit``) say how to build each token. The refusal tests
(``test_forged_tokens``, ``test_token_claims``) parametrise over these tables,
and ``test_verifier_parity`` feeds the same tokens to both verifiers.
"""

from __future__ import annotations

import uuid
from typing import Any

from jwt.algorithms import ECAlgorithm

from .attack_helpers import DELETE, b64
from .kit import Kit

# P-256's group order n: r = s = n is as degenerate as r = s = 0.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- alg none, null and psychic signatures ----------------------------------------------

NONE_ALGORITHMS = ["none", "None", "NONE", "nOnE"]
ENDINGS = {
    "trailing-dot": lambda kit: "",
    "original-signature": lambda kit: kit.genuine.signature,
    "zero-signature": lambda kit: b64(b"\0" * 64),
}

NULL_SIGNATURES = {"empty": "", "one-zero-byte": "AA", "three-zero-bytes": "AAAA"}
PSYCHIC = {
    "raw-64-zero-bytes": b64(b"\0" * 64),
    "der-r0-s0": "MAYCAQACAQA",  # jwt_tool's CVE-2022-21449 signature: DER SEQUENCE{0, 0}
    "raw-r-s-equal-order": b64(P256_ORDER.to_bytes(32, "big") * 2),
}


# --- algorithms and key confusion -------------------------------------------------------

ENCODINGS = ["pem", "pem-no-newline", "jwk-json", "openssh", "der"]
OTHER_ALGORITHMS = ["ES384", "ES512", "PS256", "RS256", "EdDSA", "ES256K"]


# --- keys the token brings along --------------------------------------------------------


def attacker_jwk(kit: Kit, kid: str) -> dict[str, Any]:
    """The attacker's public key as a JWK under ``kid``."""
    jwk = ECAlgorithm.to_jwk(kit.attacker.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


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


KID_TYPES = {"number": 1, "array": ["{ours}"], "object": {"$ne": None}, "null": None,
             "empty": "", "true": True, "absent": DELETE}


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


# --- claims tampered after signing ------------------------------------------------------

TAMPERED = {
    "sub-other-user": lambda kit: {"sub": kit.bob.user_id},
    "sid-other-session": lambda kit: {"sid": kit.bob.session_id},
    "scope-escalated": lambda kit: {"scope": "admin"},
    "exp-extended": lambda kit: {"exp": kit.now + 365 * 86400},
    "jti-changed": lambda kit: {"jti": str(uuid.uuid4())},
    "aud-changed": lambda kit: {"aud": "payments"},
}


# --- missing and mistyped claims, under our own signature -------------------------------

REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "sid"]
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
    # The profile claims (AUTHSVC_ACCESS_TOKEN_PROFILE): short strings and booleans.
    "email-number": {"email": 7},
    "email-empty": {"email": ""},
    "email-too-long": {"email": "e" * 321},
    "email_verified-string": {"email_verified": "true"},
    "email_verified-null": {"email_verified": None},
    "phone_number-list": {"phone_number": ["+14155550123"]},
    "phone_number_verified-number": {"phone_number_verified": 1},
    "preferred_username-object": {"preferred_username": {"name": "bob"}},
}
WRONG_ISSUERS = ["auth", "authsvc2", " authsvc", "authsvc ", "AUTHSVC", "", "authsvc\x00",
                 "https://authsvc"]
WRONG_AUDIENCES = [["authsvc"], ["authsvc", "other"], ["other", "authsvc"], [], "other",
                   "authsvc2", "auth", "AUTHSVC", ""]


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
