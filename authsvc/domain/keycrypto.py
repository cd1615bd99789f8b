"""Signing-key material the server owns: generation, encryption at rest, derived keys.

Private keys are stored as PKCS#8 PEM encrypted with AES-256-GCM under the
key-encryption key (``AUTHSVC_KEY_ENCRYPTION_KEY``), with the kid as
associated data so a ciphertext cannot be moved to another key's row.

``WORK`` counts the keyed operations run through ``mac`` and ``encrypt`` in this
process (one integer add each): the enumeration tests read it to prove that a
request for an existing account does the same cryptographic work as one for an
unknown identifier, by counting instead of timing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..core.keys import PrivateKey
from ..errors import ConfigError

_ENVELOPE_VERSION = b"\x01"


@dataclass(slots=True)
class Work:
    """Keyed operations run so far: HMAC-SHA256s (``mac``) and AES-256-GCM
    encryptions (``encrypt``, ``seal``)."""

    hmacs: int = 0
    encryptions: int = 0


WORK = Work()


def mac(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (counted in ``WORK.hmacs``)."""
    WORK.hmacs += 1
    return hmac.new(key, message, hashlib.sha256).digest()


def encrypt(aead: AESGCM, data: bytes, associated: bytes) -> bytes:
    """``data`` encrypted under ``aead`` with a fresh nonce, bound to ``associated``, in
    the envelope every sealed secret uses (version, nonce, ciphertext); counted in
    ``WORK.encryptions``."""
    WORK.encryptions += 1
    nonce = os.urandom(12)
    return _ENVELOPE_VERSION + nonce + aead.encrypt(nonce, data, associated)


def generate_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ConfigError(f"AUTHSVC_SIGNING_ALG {alg!r} is not supported")


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


def seal(key: bytes, associated: str, data: bytes) -> bytes:
    """``data`` encrypted with AES-256-GCM under ``key``, bound to ``associated`` (so
    the ciphertext cannot be moved to another row), in the envelope signing keys use."""
    return encrypt(AESGCM(key), data, associated.encode())


def unseal(key: bytes, associated: str, blob: bytes) -> bytes:
    """What ``seal`` sealed; ConfigError when the key or the row does not match."""
    if blob[:1] != _ENVELOPE_VERSION:
        raise ConfigError("a sealed secret has an unknown envelope format")
    try:
        return AESGCM(key).decrypt(blob[1:13], blob[13:], associated.encode())
    except Exception:
        raise ConfigError("a sealed secret cannot be decrypted: AUTHSVC_KEY_ENCRYPTION_KEY "
                          "is not the key it was encrypted with") from None
