"""Supabase Auth (GoTrue) users into the import format.

Reads ``auth.users`` as PostgreSQL writes it with ``COPY auth.users TO STDOUT WITH
CSV HEADER`` (or ``\\copy`` in psql): a header line naming the columns, then one
row per user, timestamps as ``2026-12-07 11:17:48.095904+00``.

Per row (checked against Supabase Auth v2.196.0, tests/fixtures/peers/):

- ``external_id`` ``supabase:ID``;
- ``email`` with ``email_verified`` from ``email_confirmed_at`` (``confirmed_at``
  in exports older than that column); ``phone``, which Supabase keeps as E.164
  digits without the ``+``, with ``phone_verified`` from ``phone_confirmed_at``;
- ``encrypted_password``: ``$2a$``/``$2b$``/``$2y$`` is ``bcrypt`` (what Supabase
  makes), ``$argon2…`` is ``argon2`` (PHC, as its admin API takes moved users'
  hashes), ``$fbscrypt$v=1,n=…,r=…,p=1,ss=…,sk=…$salt$hash`` is
  ``firebase-scrypt`` (n is Firebase's memory cost, r its rounds, ss and sk the
  project's salt separator and signer key); empty means no password (a user who
  signs in with a provider or a link): imported without one;
- ``banned_until`` later than ``now`` makes the user ``disabled``;
- ``created_at``.

Skipped, reported through ``on_refused``: soft-deleted users (``deleted_at``),
anonymous users (no identifier to sign in with), and a password hash in any other
form.

    python -m authsvc.importing.supabase auth-users.csv > users.jsonl
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import OnRefused, Unconvertible, refuse, report_refused, write_lines

_BCRYPT = ("$2a$", "$2b$", "$2y$")
_FBSCRYPT = re.compile(r"^\$fbscrypt\$v=1,n=(?P<n>[0-9]+),r=(?P<r>[0-9]+),p=(?P<p>[0-9]+)"
                       r",ss=(?P<ss>[^,$]+),sk=(?P<sk>[^$]+)\$(?P<salt>[^$]+)\$(?P<hash>.+)$")


def users(lines: Iterable[str], *, now: datetime,
          on_refused: OnRefused | None = None) -> Iterator[dict[str, Any]]:
    """One import-format dict per row of the CSV text in ``lines`` (a text file
    opened with ``newline=""``); ``now`` decides whether a ban still holds."""
    for row in csv.DictReader(lines):
        external_id = f"supabase:{row.get('id', '')}"
        try:
            record = user_record(row, now=now)
        except Unconvertible as error:
            refuse(error, on_refused)
            continue
        except KeyError as missing:
            refuse(Unconvertible(external_id, f"no {missing.args[0]} column"), on_refused)
            continue
        yield record


def user_record(row: dict[str, str], *, now: datetime) -> dict[str, Any]:
    """The import-format dict of one ``auth.users`` row (CSV text values)."""
    external_id = f"supabase:{row['id']}"
    if _value(row, "deleted_at"):
        raise Unconvertible(external_id, "deleted in Supabase (deleted_at is set)")
    if _value(row, "is_anonymous") == "t":
        raise Unconvertible(external_id, "anonymous user (no email or phone)")
    record: dict[str, Any] = {"external_id": external_id}
    email = _value(row, "email")
    if email:
        confirmed = "email_confirmed_at" if "email_confirmed_at" in row else "confirmed_at"
        record["email"] = email
        record["email_verified"] = _value(row, confirmed) is not None
    phone = _value(row, "phone")
    if phone:
        record["phone"] = phone if phone.startswith("+") else f"+{phone}"
        record["phone_verified"] = _value(row, "phone_confirmed_at") is not None
    password = _password(external_id, _value(row, "encrypted_password"))
    if password is not None:
        record["password"] = password
    banned_until = _value(row, "banned_until")
    if banned_until is not None and _time(banned_until) > now:
        record["disabled"] = True
    created = _value(row, "created_at")
    if created is not None:
        record["created_at"] = _time(created).isoformat().replace("+00:00", "Z")
    return record


def _password(external_id: str, stored: str | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    if stored.startswith(_BCRYPT):
        return {"scheme": "bcrypt", "hash": stored}
    if stored.startswith("$argon2"):
        return {"scheme": "argon2", "hash": stored}
    found = _FBSCRYPT.match(stored)
    if found and found["p"] == "1":
        return {"scheme": "firebase-scrypt", "hash": found["hash"], "salt": found["salt"],
                "signer_key": found["sk"], "salt_separator": found["ss"],
                "rounds": int(found["r"]), "memory_cost": int(found["n"])}
    raise Unconvertible(external_id, "encrypted_password is not bcrypt, argon2 or "
                        "Firebase scrypt (v=1, p=1)")


def _value(row: dict[str, str], column: str) -> str | None:
    """A column's text, None when empty (COPY's CSV writes NULL as nothing)."""
    value = row.get(column)
    return value if value else None


def _time(text: str) -> datetime:
    """A timestamptz as COPY writes it (``+00`` offsets included), in UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def main(argv: list[str] | None = None, *, now: datetime | None = None) -> int:
    """Write the import format of the CSV's users to standard output, one JSON line
    each; list refused users on standard error. 2 when the file is unreadable."""
    parser = argparse.ArgumentParser(
        prog="python -m authsvc.importing.supabase",
        description="Supabase Auth auth.users CSV -> authsvc import format (JSON Lines)")
    parser.add_argument("csv", type=Path,
                        help="COPY auth.users TO STDOUT WITH CSV HEADER, saved to a file")
    args = parser.parse_args(argv)
    refused: list[Unconvertible] = []
    try:
        with args.csv.open(encoding="utf-8", newline="") as rows:
            records = list(users(rows, now=now or datetime.now(UTC),
                                 on_refused=refused.append))
    except (OSError, ValueError, csv.Error) as exc:
        sys.stderr.write(f"supabase: {args.csv}: {exc}\n")
        return 2
    report_refused("supabase", write_lines(records), refused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
