"""Signing keys as the verifiers see them: the key ring and JWK conversion.

A key signs from ``activates_at`` until ``retired_at`` and is published in
the JWKS until ``publish_until`` (``None``: as long as it is not retired),
which covers every token it signed. The kid is the RFC 7638 thumbprint of
the public key. Generating and encrypting keys is the server's business
(``authsvc.domain.keycrypto``); this module only reads them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

log = logging.getLogger(__name__)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"),
                       "RSA": ("e", "kty", "n")}
_ALGORITHMS: dict[str, Any] = {"ES256": ECAlgorithm, "EdDSA": OKPAlgorithm,
                               "RS256": RSAAlgorithm}


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    public_key: PublicKey
    private_key: PrivateKey | None
    jwk: dict[str, str]
    created_at: float
    activates_at: float
    retired_at: float | None
    publish_until: float | None

    def signs_at(self, now: float) -> bool:
        return self.activates_at <= now and (self.retired_at is None or now < self.retired_at)

    def published_at(self, now: float) -> bool:
        return self.publish_until is None or now < self.publish_until


def public_jwk(alg: str, public_key: PublicKey) -> dict[str, str]:
    """The RFC 7517 JWK of ``public_key``, with kid (RFC 7638 thumbprint), use and alg."""
    jwk: dict[str, str] = _ALGORITHMS[alg].to_jwk(public_key, as_dict=True)
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    kid = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return {**{m: jwk[m] for m in members}, "kid": kid, "use": "sig", "alg": alg}


def verification_key(jwk: Mapping[str, str], algorithms: frozenset[str]) -> SigningKey | None:
    """A verify-only key from a published JWK; None if it is unusable here
    (another use or algorithm, no kid, or not a valid key)."""
    if jwk.get("use", "sig") != "sig" or jwk.get("alg") not in algorithms or not jwk.get("kid"):
        return None
    try:
        public = jwt.PyJWK(dict(jwk)).key
    except (jwt.PyJWTError, ValueError, TypeError):
        log.warning("ignoring unusable JWK %s", jwk.get("kid"))
        return None
    return SigningKey(kid=jwk["kid"], alg=jwk["alg"], public_key=public, private_key=None,
                      jwk=dict(jwk), created_at=0.0, activates_at=0.0, retired_at=None,
                      publish_until=None)


class KeyRing:
    """The service's own keys, by kid. Nothing else is ever used to verify."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        keys = list(keys)
        self._by_kid = {k.kid: k for k in keys}
        self._keys = sorted(keys, key=lambda k: k.activates_at, reverse=True)

    def __len__(self) -> int:
        return len(self._keys)

    def all(self) -> list[SigningKey]:
        return list(self._keys)

    def get(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)

    def signer(self, now: float) -> SigningKey | None:
        """The newest key that signs now and has a private half."""
        for key in self._keys:
            if key.private_key is not None and key.signs_at(now):
                return key
        return None

    def published(self, now: float) -> list[SigningKey]:
        return [k for k in self._keys if k.published_at(now)]
