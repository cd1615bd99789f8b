"""Passwordless passkey ceremonies that write nothing until a credential answers.

``BeginPasskeyAssertion`` without an mfa_token is public and unauthenticated, so a
row per call would let anyone fill a table. Instead the ceremony lives in its id:
a random nonce and an expiry, authenticated by an HMAC under a key derived from
the key-encryption key (every replica derives the same one, none is stored). The
WebAuthn challenge is derived from the nonce, so nothing needs remembering. When
a credential answers, the ceremony is recorded as spent in the same statement
that checks its expiry by the database's clock, so it answers once, on any
replica; an id that was not issued here, was altered or has expired is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from ...clock import Clock
from ...core.b64 import b64url, unb64url
from ..keycrypto import derive_key

_NONCE = 16
_TAG = 16


@dataclass(frozen=True, slots=True)
class SignedCeremony:
    ceremony_id: str
    challenge: bytes
    expires_at: float


class SignedCeremonies:
    def __init__(self, key_encryption_key: bytes, clock: Clock, ttl: int) -> None:
        self._key = derive_key(key_encryption_key, b"authsvc passkey sign-in ceremonies v1")
        self._clock = clock
        self._ttl = ttl

    def open(self) -> SignedCeremony:
        nonce = os.urandom(_NONCE)
        expires_at = int(self._clock()) + self._ttl
        body = nonce + expires_at.to_bytes(8, "big")
        ceremony_id = b64url(body + self._mac(b"id", body)[:_TAG])
        return SignedCeremony(ceremony_id, self._mac(b"challenge", nonce), expires_at)

    def read(self, ceremony_id: str) -> SignedCeremony | None:
        """The ceremony ``ceremony_id`` names, if this service issued it; its expiry is
        for the database to judge when it is spent."""
        raw = unb64url(ceremony_id)  # one spelling: the id is spent under its hash
        if raw is None or len(raw) != _NONCE + 8 + _TAG:
            return None
        body, tag = raw[:-_TAG], raw[-_TAG:]
        if not hmac.compare_digest(tag, self._mac(b"id", body)[:_TAG]):
            return None
        nonce = body[:_NONCE]
        return SignedCeremony(ceremony_id, self._mac(b"challenge", nonce),
                              float(int.from_bytes(body[_NONCE:], "big")))

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\x00" + data, hashlib.sha256).digest()
