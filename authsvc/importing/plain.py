"""A home-made users table (CSV with a header, or JSON Lines) into the import format.

Columns (any order; all but ``external_id``, an identifier and ``password_hash``
optional): ``external_id`` (or ``id``), ``email``, ``email_verified``, ``phone``,
``phone_verified``, ``username``, ``password_hash``, ``disabled``, ``created_at``.
Booleans are ``true``/``false``, ``1``/``0``, ``t``/``f`` (as ``COPY … CSV``
writes them). The hash column holds the string the application stored; its scheme
is recognised from its form:

- PHC: ``$argon2id$…`` (argon2), ``$2a$``/``$2b$``/``$2y$`` (bcrypt);
- Django: ``pbkdf2_sha256$…``, ``pbkdf2_sha1$…``, ``bcrypt$…``,
  ``bcrypt_sha256$…``, ``argon2$…``, ``scrypt$…``; salted ``md5$salt$hex`` and
  ``sha1$salt$hex`` (weak);
- passlib: ``$pbkdf2$…``, ``$pbkdf2-sha256$…``, ``$pbkdf2-sha512$…``;
- 32 or 40 hexadecimal digits: unsalted MD5 or SHA-1 (weak: refused unless the
  import allows weak hashes).

Anything else becomes ``{"scheme": "unrecognised"}``, which the import refuses
and reports (field ``password.scheme``), rather than a guess.

    python -m authsvc.importing.plain users.csv > users.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_HEX = re.compile(r"[0-9a-fA-F]+")
_DJANGO = ("pbkdf2_sha256$", "pbkdf2_sha1$", "bcrypt$", "bcrypt_sha256$", "argon2$", "scrypt$")
_BOOLEAN = {"true": True, "t": True, "1": True, "yes": True,
            "false": False, "f": False, "0": False, "no": False, "": False}


def password_object(value: str) -> dict[str, Any] | None:
    """The import format's password object for a stored hash string (None: empty)."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("$argon2"):
        return {"scheme": "argon2", "hash": value}
    if value.startswith(("$2a$", "$2b$", "$2y$")):
        return {"scheme": "bcrypt", "hash": value}
    if value.startswith("$pbkdf2"):
        return {"scheme": "passlib", "hash": value}
    if value.startswith(_DJANGO):
        return {"scheme": "django", "hash": value}
    for scheme in ("md5", "sha1"):  # Django's salted ones: md5$salt$hex
        if value.startswith(scheme + "$") and value.count("$") == 2:
            _, salt, digest = value.split("$")
            return {"scheme": scheme, "hash": digest, **({"salt": salt} if salt else {})}
    if _HEX.fullmatch(value) and len(value) in (32, 40):
        return {"scheme": "md5" if len(value) == 32 else "sha1", "hash": value}
    return {"scheme": "unrecognised"}


def lines(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One import-format dict per row of the table."""
    for row in rows:
        line: dict[str, Any] = {"external_id": str(row.get("external_id") or row.get("id")
                                                   or "")}
        for key in ("email", "phone", "username"):
            if row.get(key):
                line[key] = row[key]
        for key in ("email_verified", "phone_verified", "disabled"):
            if key in row:
                line[key] = _flag(row[key])
        password = password_object(str(row.get("password_hash") or ""))
        if password is not None:
            line["password"] = password
        if row.get("created_at"):
            line["created_at"] = str(row["created_at"])
        yield line


def _flag(value: object) -> object:
    if isinstance(value, bool):
        return value
    return _BOOLEAN.get(str(value).strip().lower(), value)  # else: refused by the import


def read(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a CSV file with a header, or of a JSON Lines file (``.jsonl``)."""
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix in (".jsonl", ".ndjson", ".json"):
            for text in handle:
                if text.strip():
                    yield json.loads(text)
        else:
            yield from csv.DictReader(handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m authsvc.importing.plain",
        description="a home-made users table (CSV or JSON Lines) -> authsvc import format")
    parser.add_argument("table", type=Path, help="CSV with a header, or .jsonl")
    args = parser.parse_args(argv)
    try:
        for line in lines(read(args.table)):
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"plain: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
