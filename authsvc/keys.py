"""Signing keys: generation, encryption at rest, JWK export and the key ring.

Private keys are stored as PKCS#8 PEM encrypted with AES-256-GCM under the
key-encryption key (``AUTHSVC_KEY_ENCRYPTION_KEY``), with the kid as
associated data so a ciphertext cannot be moved to another key's row. The
kid is the RFC 7638 thumbprint of the public key.

A key signs from ``activates_at`` until ``retired_at`` and is published in
the JWKS until ``publish_until`` (``None``: as long as it is not retired),
which covers every token it signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .errors import ConfigError

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"),
                       "RSA": ("e", "kty", "n")}
_ENVELOPE_VERSION = b"\x01"


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


def generate_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ConfigError(f"AUTHSVC_SIGNING_ALG {alg!r} is not supported")


def public_jwk(alg: str, public_key: PublicKey) -> dict[str, str]:
    """The RFC 7517 JWK of ``public_key``, with kid (RFC 7638 thumbprint), use and alg."""
    algorithm: Any = {"ES256": ECAlgorithm, "EdDSA": OKPAlgorithm, "RS256": RSAAlgorithm}[alg]
    jwk: dict[str, str] = algorithm.to_jwk(public_key, as_dict=True)
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    kid = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return {**{m: jwk[m] for m in members}, "kid": kid, "use": "sig", "alg": alg}


def derive_key(key_encryption_key: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for one purpose, derived (HKDF-SHA256) from the key-encryption key,
    so every replica derives the same one and none is stored."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        key_encryption_key)


def encrypt_private_key(kek: bytes, kid: str, key: PrivateKey) -> bytes:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    nonce = os.urandom(12)
    return _ENVELOPE_VERSION + nonce + AESGCM(kek).encrypt(nonce, pem, kid.encode())


def decrypt_private_key(kek: bytes, kid: str, blob: bytes) -> PrivateKey:
    if blob[:1] != _ENVELOPE_VERSION:
        raise ConfigError(f"signing key {kid} has an unknown envelope format")
    try:
        pem = AESGCM(kek).decrypt(blob[1:13], blob[13:], kid.encode())
    except Exception:
        raise ConfigError(
            f"signing key {kid} cannot be decrypted: AUTHSVC_KEY_ENCRYPTION_KEY is not "
            "the key it was encrypted with") from None
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
                      | rsa.RSAPrivateKey):
        raise ConfigError(f"signing key {kid} is of an unsupported type")
    return key


class KeyRing:
    """The service's own keys, by kid. Nothing else is ever used to verify."""

    def __init__(self, keys: list[SigningKey]) -> None:
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
