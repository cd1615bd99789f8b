"""Unpadded base64url (RFC 4648, section 5): how ids and sealed values travel in
URLs, cookies and JSON.

Reading is strict: one value has exactly one spelling. Python's decoder forgives
padding, characters outside the alphabet and set unused bits, so a single-use id
spent under a hash of its text could otherwise be spent again under another
spelling of the same bytes.
"""

from __future__ import annotations

import base64
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes | None:
    """The bytes ``text`` spells in canonical unpadded base64url; None for anything
    else (other characters, padding, a dangling character, unused bits set)."""
    if not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return raw if b64url(raw) == text else None
