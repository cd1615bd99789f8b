"""Keycloak realm exports into the import format.

Reads what ``kc.sh export --realm NAME`` writes: with ``--users realm_file`` the
users are in the realm's JSON (``NAME-realm.json``); with ``--users
different_files`` in ``NAME-users-N.json`` files, each ``{"realm": ..., "users":
[...]}``. ``users`` takes one parsed document of either kind; call it per file.

Per user (checked against Keycloak 26.7.3's own export, tests/fixtures/peers/):

- ``external_id`` ``keycloak:REALM:ID`` (the user's id is unique in its realm);
- ``username``, unless it is the email (realms that use the email as username),
  ``email`` and ``emailVerified``; ``enabled: false`` becomes ``disabled``;
  ``createdTimestamp`` (milliseconds) becomes ``created_at``;
- the ``password`` credential: its ``credentialData`` names the algorithm and
  parameters, its ``secretData`` the Base64 hash and salt. ``pbkdf2`` (SHA-1),
  ``pbkdf2-sha256`` and ``pbkdf2-sha512`` become the ``pbkdf2`` scheme with the
  hash's own length; ``argon2`` becomes its PHC string (type, version,
  memory in KiB, iterations, parallelism, salt and hash);
- an ``otp`` credential of subtype ``totp`` becomes ``totp``. Keycloak keeps the
  secret as the text it generated and gives authenticator apps the Base32 of its
  UTF-8 bytes, unless ``credentialData.secretEncoding`` is ``BASE32`` (the secret
  then is that Base32 text already); its ``HmacSHA1`` is ``SHA1``.

Refused (``on_refused``, see the package): a password algorithm other than those
four (a custom provider's), a counter-based (``hotp``) credential, or more than one
OTP credential — authsvc keeps one authenticator app per user, and dropping one
would leave a device that no longer works without saying so. Users with no
password credential (federated or social-only) are carried over without one: they
set a password by reset. Not carried over: groups and roles (give scopes in the
lines or afterwards), and required actions (a temporary password is imported as
the user's password; a pending email verification shows as ``emailVerified``).

    python -m authsvc.importing.keycloak acme-realm.json [acme-users-0.json ...] > users.jsonl
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import OnRefused, Unconvertible, refuse, report_refused, write_lines

_PBKDF2_DIGESTS = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}
_ARGON2_VERSIONS = {"1.0": 16, "1.3": 19}
_ARGON2_TYPES = {"id", "i", "d"}
_OTP_ALGORITHMS = {"HmacSHA1": "SHA1", "HmacSHA256": "SHA256", "HmacSHA512": "SHA512"}


def users(document: dict[str, Any], *,
          on_refused: OnRefused | None = None) -> Iterator[dict[str, Any]]:
    """One import-format dict per user of a realm export (or users file)."""
    realm = document.get("realm")
    if not isinstance(realm, str) or not realm:
        raise ValueError("not a Keycloak realm export: no realm name")
    for user in document.get("users") or []:
        try:
            yield user_record(realm, user)
        except Unconvertible as error:
            refuse(error, on_refused)
        except (KeyError, TypeError, ValueError):
            refuse(Unconvertible(f"keycloak:{realm}:{user.get('id')}",
                                 "malformed user or credential"), on_refused)


def user_record(realm: str, user: dict[str, Any]) -> dict[str, Any]:
    """The import-format dict of one exported user."""
    external_id = f"keycloak:{realm}:{user['id']}"
    record: dict[str, Any] = {"external_id": external_id}
    email = user.get("email")
    if email:
        record["email"] = email
        record["email_verified"] = bool(user.get("emailVerified", False))
    username = user.get("username")
    if username and (not email or username.casefold() != email.casefold()):
        record["username"] = username
    if user.get("enabled") is False:
        record["disabled"] = True
    created = user.get("createdTimestamp")
    if isinstance(created, int):
        moment = datetime.fromtimestamp(created / 1000, tz=UTC)
        record["created_at"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    credentials = user.get("credentials") or []
    passwords = [c for c in credentials if c.get("type") == "password"]
    if passwords:
        # Keycloak keeps one password per user; the first by priority is the one it checks.
        record["password"] = _password(external_id, passwords[0])
    otps = [c for c in credentials if c.get("type") == "otp"]
    if len(otps) > 1:
        raise Unconvertible(external_id, "more than one OTP credential "
                            "(authsvc keeps one authenticator app per user)")
    if otps:
        record["totp"] = _totp(external_id, otps[0])
    return record


def _password(external_id: str, credential: dict[str, Any]) -> dict[str, Any]:
    data = _json(external_id, credential, "credentialData")
    secret = _json(external_id, credential, "secretData")
    algorithm = data.get("algorithm")
    if algorithm in _PBKDF2_DIGESTS:
        return {"scheme": "pbkdf2", "digest": _PBKDF2_DIGESTS[algorithm],
                "iterations": data["hashIterations"], "salt": secret["salt"],
                "hash": secret["value"]}
    if algorithm == "argon2":
        return {"scheme": "argon2", "hash": _argon2_phc(external_id, data, secret)}
    raise Unconvertible(external_id, f"password hash algorithm {algorithm!r} is not one "
                        "authsvc can check (pbkdf2, pbkdf2-sha256, pbkdf2-sha512, argon2)")


def _argon2_phc(external_id: str, data: dict[str, Any], secret: dict[str, Any]) -> str:
    """The PHC string of Keycloak's argon2 credential. Its ``additionalParameters``
    hold each value as a one-element list of text."""
    extra = data.get("additionalParameters") or {}

    def one(name: str, default: str) -> str:
        value = extra.get(name, [default])
        return str(value[0] if isinstance(value, list) and value else value)

    kind = one("type", "id")
    version = _ARGON2_VERSIONS.get(one("version", "1.3"))
    if kind not in _ARGON2_TYPES or version is None:
        raise Unconvertible(external_id, "argon2 credential with an unknown type or version")
    salt = _unpadded(secret["salt"])
    digest = _unpadded(secret["value"])
    return (f"$argon2{kind}$v={version}$m={int(one('memory', '7168'))},"
            f"t={int(data['hashIterations'])},p={int(one('parallelism', '1'))}"
            f"${salt}${digest}")


def _totp(external_id: str, credential: dict[str, Any]) -> dict[str, Any]:
    data = _json(external_id, credential, "credentialData")
    secret = _json(external_id, credential, "secretData")
    if data.get("subType", "totp") != "totp":
        raise Unconvertible(external_id, "counter-based (hotp) OTP credential "
                            "(authsvc checks time-based codes only)")
    value = secret.get("value")
    if not isinstance(value, str) or not value:
        raise Unconvertible(external_id, "OTP credential without a secret")
    if str(data.get("secretEncoding") or "").upper() == "BASE32":
        base32 = value.replace(" ", "").upper().rstrip("=")
    else:
        base32 = base64.b32encode(value.encode()).decode().rstrip("=")
    algorithm = data.get("algorithm", "HmacSHA1")
    return {"secret": base32, "algorithm": _OTP_ALGORITHMS.get(algorithm, algorithm),
            "digits": int(data.get("digits", 6)), "period": int(data.get("period", 30))}


def _json(external_id: str, credential: dict[str, Any], key: str) -> dict[str, Any]:
    """A credential's ``credentialData`` or ``secretData``: JSON kept as a string."""
    try:
        value = json.loads(credential.get(key) or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise Unconvertible(external_id, f"{credential.get('type')} credential's {key} "
                            "is not a JSON object")
    return value


def _unpadded(standard_base64: str) -> str:
    """PHC strings write Base64 without padding."""
    return standard_base64.rstrip("=")


def main(argv: list[str] | None = None) -> int:
    """Write the import format of each file's users to standard output, one JSON
    line each; list refused users on standard error. 2 when a file is unreadable."""
    parser = argparse.ArgumentParser(
        prog="python -m authsvc.importing.keycloak",
        description="Keycloak realm export -> authsvc import format (JSON Lines on stdout)")
    parser.add_argument("exports", type=Path, nargs="+",
                        help="the realm file, or the users files, `kc.sh export` wrote")
    args = parser.parse_args(argv)
    written = 0
    refused: list[Unconvertible] = []
    for path in args.exports:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            records = list(users(document, on_refused=refused.append))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"keycloak: {path}: {exc}\n")
            return 2
        written += write_lines(records)
    report_refused("keycloak", written, refused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
