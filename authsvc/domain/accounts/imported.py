"""The import format: one user per JSON line, read into an ``ImportedUser``.

The contract (docs/guides/import-users.md has it for operators)::

    {"external_id": "kc:1f0c…",                  required, unique per source
     "email": "ada@example.com", "email_verified": true,
     "phone": "+15551234567", "phone_verified": false,
     "username": "ada",                          at least one identifier
     "password": {"scheme": "bcrypt", "hash": "$2b$…"},   optional (foreign_hashes)
     "totp": {"secret": "BASE32", "algorithm": "SHA1", "digits": 6, "period": 30},
     "scopes": ["…"], "disabled": false, "created_at": "2024-05-01T10:00:00Z"}

Unknown keys are refused, naming them: a typo must not drop a field silently.
Nothing is hashed here; a password object is only checked for shape and cost.
A refused line is an ``InvalidArgument`` naming its field (``password.hash``,
``email``, ...); a weak scheme without the operator's opt-in is ``WeakHash``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...errors import InvalidArgument
from . import foreign_hashes, identifiers
from .foreign_hashes import RefusedHash

KEYS = frozenset({"external_id", "email", "email_verified", "phone", "phone_verified",
                  "username", "password", "totp", "scopes", "disabled", "created_at"})
TOTP_KEYS = frozenset({"secret", "algorithm", "digits", "period"})
MAX_EXTERNAL_ID = 255
MAX_LINE = 64 * 1024


class WeakHash(InvalidArgument):
    """A fast, unsalted-grade hash (md5, sha1) the operator did not allow."""


@dataclass(frozen=True, slots=True)
class ImportedUser:
    external_id: str
    email: str | None
    email_verified: bool
    phone: str | None
    phone_verified: bool
    username: str | None
    # foreign_hashes.encode(...); None for a user who had no password there (one who
    # signed in with a provider, or never set one): stored as NULL like the users of
    # identity providers, no password matches it, and a password reset sets one.
    password_hash: str | None
    scheme: str | None  # the foreign scheme, None without a password
    totp_secret: bytes | None
    scopes: tuple[str, ...]
    disabled: bool
    created_at: datetime | None


def parse_line(line: str | bytes, *, allow_weak: bool = False) -> ImportedUser:
    """One line of the format, validated; InvalidArgument names the field otherwise."""
    if len(line) > MAX_LINE:
        raise InvalidArgument("line", f"must be at most {MAX_LINE} bytes")
    try:
        raw = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("line", "must be one JSON object") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("line", "must be one JSON object")
    return parse(raw, allow_weak=allow_weak)


def parse(raw: dict[str, Any], *, allow_weak: bool = False) -> ImportedUser:
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise InvalidArgument(unknown[0], "is not a field of the import format")
    external_id = raw.get("external_id")
    if not isinstance(external_id, str) or not 1 <= len(external_id) <= MAX_EXTERNAL_ID:
        raise InvalidArgument("external_id", f"must be a string of 1 to {MAX_EXTERNAL_ID} "
                              "characters")
    email = _identifier(raw, "email")
    phone = _identifier(raw, "phone")
    username = _identifier(raw, "username")
    if email is None and phone is None and username is None:
        raise InvalidArgument("email", "one of email, phone or username is required")
    email_verified = _flag(raw, "email_verified")
    phone_verified = _flag(raw, "phone_verified")
    if email_verified and email is None:
        raise InvalidArgument("email_verified", "must not be true without an email")
    if phone_verified and phone is None:
        raise InvalidArgument("phone_verified", "must not be true without a phone")
    password_hash: str | None = None
    scheme: str | None = None
    if raw.get("password") is not None:
        try:
            checked = foreign_hashes.check(raw["password"], allow_weak=allow_weak)
        except RefusedHash as refused:
            kind = WeakHash if refused.weak else InvalidArgument
            raise kind(refused.field, refused.reason) from None
        password_hash, scheme = foreign_hashes.encode(checked), checked["scheme"]
    scopes = raw.get("scopes", [])
    if not isinstance(scopes, list):
        raise InvalidArgument("scopes", "must be a list of strings")
    return ImportedUser(
        external_id=external_id, email=email, email_verified=email_verified, phone=phone,
        phone_verified=phone_verified, username=username, password_hash=password_hash,
        scheme=scheme, totp_secret=_totp(raw.get("totp")),
        scopes=identifiers.check_scopes(scopes, "scopes"), disabled=_flag(raw, "disabled"),
        created_at=_time(raw.get("created_at")))


def _identifier(raw: dict[str, Any], kind: identifiers.Kind) -> str | None:
    value = raw.get(kind)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(kind, "must be a string")
    return identifiers.normalize(kind, value).value  # InvalidArgument names the kind


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(key, "must be true or false")
    return value


def _totp(raw: object) -> bytes | None:
    """The secret of an authenticator app authsvc can check: SHA-1, 6 digits, 30 s
    (what nearly every app uses); any other setting is refused, not guessed."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidArgument("totp", "must be an object")
    unknown = sorted(set(raw) - TOTP_KEYS)
    if unknown:
        raise InvalidArgument(f"totp.{unknown[0]}", "is not a field of totp")
    if raw.get("algorithm", "SHA1") != "SHA1":
        raise InvalidArgument("totp.algorithm", "must be SHA1 (the only one supported)")
    if raw.get("digits", 6) != 6:
        raise InvalidArgument("totp.digits", "must be 6 (the only length supported)")
    if raw.get("period", 30) != 30:
        raise InvalidArgument("totp.period", "must be 30 (the only period supported)")
    secret = raw.get("secret")
    if not isinstance(secret, str) or not secret:
        raise InvalidArgument("totp.secret", "must be a base32 string")
    text = secret.replace(" ", "").upper()
    try:
        decoded = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise InvalidArgument("totp.secret", "must be a base32 string") from None
    if not 10 <= len(decoded) <= 64:
        raise InvalidArgument("totp.secret", "must be 10 to 64 bytes (80 to 512 bits)")
    return decoded


def _time(raw: object) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidArgument("created_at", "must be an RFC 3339 time with its offset")
    return moment
