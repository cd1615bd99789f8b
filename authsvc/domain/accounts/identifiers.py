"""How people name themselves: email, phone number or username, normalised.

Rules (a decision, documented in README):

- email: ``local@domain``, at most 254 characters, local part at most 64,
  domain of dot-separated labels of letters, digits and hyphens; compared
  case-insensitively, stored lower-cased.
- phone: E.164. Spaces, hyphens, dots and parentheses are accepted and
  dropped; the result is ``+`` and 8 to 15 digits, the first not 0.
- username: 3 to 64 characters of ASCII letters, digits, ``.``, ``_`` and
  ``-``, starting with a letter or digit; stored lower-cased.

Anything else is ``InvalidArgument`` naming the field, raised before the
database sees the value (so NUL bytes and oversize strings never reach it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ...errors import InvalidArgument
from . import blocklist

Kind = Literal["email", "phone", "username"]
KINDS: tuple[Kind, ...] = ("email", "phone", "username")

MAX_EMAIL = 254
MAX_RAW_PHONE = 32
MAX_USERNAME = 64
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalised identifier: which kind, and its canonical text."""

    kind: Kind
    value: str


def kind_of(kind: str | None, field: str = "identifier") -> Kind:
    """The kind a request's ``identifier`` oneof chose; refused when it chose none."""
    for known in KINDS:
        if kind == known:
            return known
    raise InvalidArgument(field, "one of email, phone or username is required")


def normalize(kind: Kind, raw: str) -> Identifier:
    """Validate ``raw`` as a ``kind`` and return its canonical form."""
    if kind == "email":
        return Identifier("email", _email(raw))
    if kind == "phone":
        return Identifier("phone", _phone(raw))
    return Identifier("username", _username(raw))


# RFC 6749 scope-token: printable ASCII except space, double quote and backslash.
_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,128}")


def check_scopes(scopes: list[str] | tuple[str, ...], field: str = "scope",
                 ) -> tuple[str, ...]:
    """The scopes, each a valid scope-token, duplicates dropped (order kept)."""
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
            raise InvalidArgument(field, "must be 1 to 128 printable ASCII characters "
                                  "without spaces, quotes or backslashes")
    return tuple(dict.fromkeys(scopes))


def check_password(password: str, field: str = "password",
                   names: tuple[str | None, ...] = ()) -> str:
    """A new password: 8 to 1024 characters, kept exactly as given (no trimming),
    not one of the common passwords of breach corpora, and not containing the
    account's own identifiers (``names``: email or its local part, phone, username)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(field, f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument(field, f"must be at most {MAX_PASSWORD} characters")
    if blocklist.is_common(password):
        raise InvalidArgument(field, "is too common; choose a longer or less usual one")
    lowered = password.lower()
    for name in names:
        for part in (name, name.partition("@")[0], name.lstrip("+")) if name else ():
            if len(part) >= 4 and part.lower() in lowered:
                raise InvalidArgument(field, "must not contain the account's identifier")
    return password


def _email(raw: str) -> str:
    if not raw:
        raise InvalidArgument("email", "must not be empty")
    if len(raw) > MAX_EMAIL:
        raise InvalidArgument("email", f"must be at most {MAX_EMAIL} characters")
    local, at, domain = raw.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or not _EMAIL_LOCAL.fullmatch(local)
        or local.startswith(".") or local.endswith(".") or ".." in local
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidArgument("email", "is not a valid email address")
    return raw.lower()


def _phone(raw: str) -> str:
    if not raw:
        raise InvalidArgument("phone", "must not be empty")
    if len(raw) > MAX_RAW_PHONE:
        raise InvalidArgument("phone", f"must be at most {MAX_RAW_PHONE} characters")
    compact = _PHONE_PUNCTUATION.sub("", raw)
    if not compact.isascii() or not _E164.fullmatch(compact):
        raise InvalidArgument("phone", "must be an E.164 number such as +14155550123")
    return compact


def _username(raw: str) -> str:
    if not raw:
        raise InvalidArgument("username", "must not be empty")
    if len(raw) > MAX_USERNAME:
        raise InvalidArgument("username", f"must be at most {MAX_USERNAME} characters")
    if not raw.isascii() or not _USERNAME.fullmatch(raw):
        raise InvalidArgument(
            "username", "must be 3 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return raw.lower()
