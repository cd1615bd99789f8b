"""Device tokens: OWASP "device cookies" against lockout by guessing.

A successful sign-in hands the device an opaque token bound to the
identifier it signed in with: ``d1.<nonce and issue time>.<HMAC>``, the HMAC
(SHA-256, key derived from the key-encryption key) over the identifier and
the payload, so nothing is stored and every replica checks it alike. Sent
back with a later SignIn of the same identifier, it exempts that device
from the per-identifier throttle counter (an attacker's guesses elsewhere
cannot keep the owner out) and puts it under a tight counter of its own,
keyed on the token, so a stolen token buys an attacker no more guesses than
one device gets. A token is good for ``AUTHSVC_THROTTLE_TRUST_TTL``; each
successful sign-in returns a fresh one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

from ...clock import Clock
from ...core.b64 import b64url
from ...errors import InvalidArgument
from ..accounts.identifiers import Identifier
from ..keycrypto import derive_key

MAX_LENGTH = 256
_PREFIX = "d1"
_PAYLOAD = struct.Struct(">16sQ")  # nonce, issued at (whole seconds)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DeviceTokens:
    def __init__(self, key_encryption_key: bytes, clock: Clock, ttl: float) -> None:
        self._key = derive_key(key_encryption_key, b"authsvc device tokens v1")
        self._clock = clock
        self._ttl = ttl

    def issue(self, identifier: Identifier) -> str:
        payload = _PAYLOAD.pack(os.urandom(16), int(self._clock()))
        return f"{_PREFIX}.{b64url(payload)}.{b64url(self._mac(identifier, payload))}"

    def device_of(self, token: str, identifier: Identifier) -> str | None:
        """The device a token names, when it is genuine, this identifier's and not
        expired; None otherwise (an unknown device, not an error)."""
        if not token:
            return None
        if len(token) > MAX_LENGTH:
            raise InvalidArgument("device_token", f"must be at most {MAX_LENGTH} characters")
        prefix, _, rest = token.partition(".")
        encoded, _, mac = rest.partition(".")
        try:
            payload, tag = _unb64(encoded), _unb64(mac)
        except ValueError:
            return None
        if prefix != _PREFIX or len(payload) != _PAYLOAD.size:
            return None
        if not hmac.compare_digest(tag, self._mac(identifier, payload)):
            return None
        nonce, issued_at = _PAYLOAD.unpack(payload)
        if not issued_at <= self._clock() < issued_at + self._ttl:
            return None
        return str(nonce.hex())

    def _mac(self, identifier: Identifier, payload: bytes) -> bytes:
        message = f"{identifier.kind}\x00{identifier.value}\x00".encode() + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()
