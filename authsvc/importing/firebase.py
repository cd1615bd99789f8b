"""Firebase Authentication: ``firebase auth:export users.json`` plus the project's
password hash parameters, into the import format.

The export (firebase-tools' accountExporter) is ``{"users": [...]}`` with, per
user, ``localId``, ``email``, ``emailVerified``, ``passwordHash`` and ``salt``
(standard base64; present only for Firebase's own scrypt), ``phoneNumber``,
``disabled`` and ``createdAt`` (milliseconds, as a string). The hash parameters
are the ones the Console shows under "Password Hash Parameters", pasted as they
are::

    hash_config {
      algorithm: SCRYPT,
      base64_signer_key: jxspr8Ki0RYy…,
      base64_salt_separator: Bw==,
      rounds: 8,
      mem_cost: 14,
    }

(or the same keys as a JSON object). A user without a password hash (signed in
with a provider only) is imported without a password. Multi-factor secrets are
not in Firebase's exports, so none are carried over.

    python -m authsvc.importing.firebase users.json --hash-config hash.txt > users.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_CONFIG_ENTRY = re.compile(r"(\w+)\s*:\s*([^,\n}]+)")
_CONFIG_KEYS = {"base64_signer_key": "signer_key", "base64_salt_separator": "salt_separator",
                "rounds": "rounds", "mem_cost": "memory_cost"}


def hash_config(text: str) -> dict[str, Any]:
    """The parameters of the project's modified scrypt, from the Console's text block
    or a JSON object with the same keys; ValueError naming what is missing."""
    text = text.strip()
    raw: dict[str, Any] = (json.loads(text) if text.startswith("{") else
                           {k: v.strip().strip('"') for k, v in _CONFIG_ENTRY.findall(text)})
    algorithm = str(raw.get("algorithm", "SCRYPT")).upper()
    if algorithm != "SCRYPT":
        raise ValueError(f"hash config: algorithm {algorithm} is not Firebase's scrypt")
    missing = [key for key in _CONFIG_KEYS if key not in raw]
    if missing:
        raise ValueError("hash config: missing " + ", ".join(missing))
    config = {ours: raw[theirs] for theirs, ours in _CONFIG_KEYS.items()}
    config["rounds"], config["memory_cost"] = int(config["rounds"]), int(config["memory_cost"])
    return config


def lines(export: dict[str, Any], config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One import-format dict per exported user."""
    for user in export.get("users", []):
        line: dict[str, Any] = {"external_id": f"firebase:{user.get('localId', '')}"}
        if user.get("email"):
            line["email"] = user["email"]
            line["email_verified"] = bool(user.get("emailVerified", False))
        if user.get("phoneNumber"):
            # Firebase proves a phone number by signing in with it: it is verified.
            line["phone"] = user["phoneNumber"]
            line["phone_verified"] = True
        if user.get("passwordHash") and user.get("salt"):
            line["password"] = {"scheme": "firebase-scrypt", "hash": _padded(user["passwordHash"]),
                                "salt": _padded(user["salt"]), **config}
        if user.get("disabled"):
            line["disabled"] = True
        if str(user.get("createdAt", "")).isdigit():
            line["created_at"] = datetime.fromtimestamp(
                int(user["createdAt"]) / 1000, UTC).isoformat().replace("+00:00", "Z")
        yield line


def _padded(value: str) -> str:
    """Standard base64 with its padding (the export may drop it)."""
    value = value.replace("-", "+").replace("_", "/")
    return value + "=" * (-len(value) % 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m authsvc.importing.firebase",
        description="Firebase auth:export JSON -> authsvc import format (JSON Lines on stdout)")
    parser.add_argument("export", type=Path, help="the file `firebase auth:export` wrote")
    parser.add_argument("--hash-config", type=Path, required=True,
                        help="the project's password hash parameters, as the Console shows them")
    args = parser.parse_args(argv)
    try:
        config = hash_config(args.hash_config.read_text())
        export = json.loads(args.export.read_text())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"firebase: {exc}\n")
        return 2
    for line in lines(export, config):
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
