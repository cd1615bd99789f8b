"""Refresh tokens: opaque to clients; a session id and a counter, authenticated.

A token is ``base64url(version ‖ session id ‖ counter ‖ HMAC-SHA256)``, the
HMAC under a key derived (HKDF) from the key-encryption key and compared in
constant time. The session row keeps only its current counter, so nothing
is stored per token: a token is valid while its counter is the session's
current one, its successor is the same session with the next counter
(recomputed, identical on every replica, never stored), and any older
counter is a spent token (see ``domain.sessions.refresh``). Anyone holding the
key-encryption key could mint tokens, as they could decrypt the signing
keys: it is the one secret.

Tokens issued before counters (0004) were 256 random bits stored as SHA-256
hashes in ``refresh_tokens``; they are recognised by not parsing as a
counter token and keep working until their sessions end.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass

from ...store import sessions as session_rows
from ...store.database import Connection
from ..keycrypto import derive_key
from .storage import SessionRows

MAX_LENGTH = 512
VERSION = 2
_INFO = b"authsvc refresh-token v2"
_LEGACY_INFO = b"authsvc refresh-token successor v1"
_BODY = 1 + 16 + 8
_LENGTH = _BODY + 32
_SHAPE = re.compile(f"[A-Za-z0-9_-]{{{(_LENGTH * 4 + 2) // 3}}}")  # unpadded base64url


@dataclass(frozen=True, slots=True)
class CounterToken:
    session_id: str
    counter: int


class RefreshTokens:
    """Mints and reads refresh tokens under keys derived from the key-encryption key."""

    def __init__(self, key_encryption_key: bytes) -> None:
        self._key = derive_key(key_encryption_key, _INFO)
        self._legacy_key = derive_key(key_encryption_key, _LEGACY_INFO)

    def token(self, session_id: str, counter: int) -> str:
        body = bytes([VERSION]) + uuid.UUID(session_id).bytes + counter.to_bytes(8, "big")
        return self.token_of(body + hmac.new(self._key, body, hashlib.sha256).digest())

    def read(self, token: str) -> CounterToken | None:
        """The session and counter of an authentic counter token; None for anything
        else (a legacy token, or garbage: the caller looks it up, and finds nothing)."""
        if not looks_like_counter_token(token):
            return None  # strictly: base64 decoding would forgive padding and spaces
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if raw[0] != VERSION or self.token_of(raw) != token:
            return None
        body, mac = raw[:_BODY], raw[_BODY:]
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()):
            return None
        counter = int.from_bytes(body[17:], "big")
        if counter >= 2**63:  # never issued: a session's counter is a bigint
            return None
        return CounterToken(str(uuid.UUID(bytes=body[1:17])), counter)

    @staticmethod
    def token_of(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def legacy_successor(self, token: str) -> str:
        """What a legacy token was rotated into before counters: its derived successor."""
        digest = hmac.new(self._legacy_key, token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def looks_like_counter_token(token: str) -> bool:
    """Shaped like a counter token (whether or not it is authentic)."""
    return _SHAPE.fullmatch(token) is not None


def token_hash(token: str) -> bytes:
    """How a legacy token is looked up."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def presented(tokens: RefreshTokens, conn: Connection, token: str,
                    sessions: SessionRows = session_rows) -> tuple[str, int] | None:
    """The session and counter a refresh token stands for: read from a counter token,
    or looked up (in ``sessions``) for a legacy one; None for anything else."""
    counter_token = tokens.read(token)
    if counter_token is not None:
        return counter_token.session_id, counter_token.counter
    if looks_like_counter_token(token):
        return None
    return await sessions.legacy_token(conn, token_hash(token))
