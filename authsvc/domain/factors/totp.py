"""TOTP (RFC 6238 over RFC 4226): SHA-1, 6 digits, 30-second steps, in a few lines of
``hmac`` — what every authenticator app computes.

The time step is never read from this replica's clock: ``store.factors.lock_totp``
hands the database's step, so replicas judge codes alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from urllib.parse import quote, urlencode

DIGITS = 6
PERIOD = 30
DRIFT = 1  # steps accepted either side of the current one (RFC 6238 section 5.2)
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommended length for HMAC-SHA-1
# What a user's secret is sealed under: derive_key(key-encryption key, this), the
# user id as associated data (store.factors keeps the sealed bytes).
SEALING_PURPOSE = b"authsvc totp secrets v1"


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def base32(secret: bytes) -> str:
    """The secret as authenticator apps take it: base32, no padding."""
    return base64.b32encode(secret).decode().rstrip("=")


def code(secret: bytes, step: int) -> str:
    """The code of time step ``step`` (RFC 4226 dynamic truncation)."""
    mac = hmac.new(secret, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFF_FFFF
    return f"{number % 10 ** DIGITS:0{DIGITS}d}"


def matching_step(secret: bytes, presented: str, step: int) -> int | None:
    """The step within ±DRIFT of ``step`` whose code is ``presented`` (the latest, if
    several), compared in constant time; None when none is."""
    found = None
    for candidate in range(step - DRIFT, step + DRIFT + 1):
        if hmac.compare_digest(code(secret, candidate), presented):
            found = candidate
    return found


def uri(secret: bytes, issuer: str, account: str) -> str:
    """The ``otpauth://`` URI (Key Uri Format) an app reads from a QR code."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode({"secret": base32(secret), "issuer": issuer, "algorithm": "SHA1",
                       "digits": DIGITS, "period": PERIOD})
    return f"otpauth://totp/{label}?{query}"
