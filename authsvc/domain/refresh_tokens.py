"""Refresh tokens: opaque, 256 bits, stored only as SHA-256 hashes.

A token's successor is derived, not drawn: ``HMAC-SHA256(k, token)`` with a
server key ``k`` derived (HKDF) from the key-encryption key. So a spent
token presented again within the grace interval gets the identical
successor back without the successor ever being stored in clear, and every
replica derives the same one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from .keycrypto import derive_key

MAX_LENGTH = 512
_INFO = b"authsvc refresh-token successor v1"


def successor_key(key_encryption_key: bytes) -> bytes:
    return derive_key(key_encryption_key, _INFO)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def successor(key: bytes, token: str) -> str:
    digest = hmac.new(key, token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
