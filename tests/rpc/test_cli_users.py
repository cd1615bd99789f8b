"""The CLI finds users and refuses event kinds it does not know."""

from __future__ import annotations

import json
import re
from pathlib import Path

from authsvc.store.events import KINDS

from ..helpers import PASSWORD
from ..helpers import authsvc as cli

PACKAGE = Path(__file__).resolve().parents[2] / "authsvc"


def test_users_show_and_list_print_json_lines(database_url):
    """`users show` prints one user by any selector; `users list` pages in id order."""
    ids = sorted(cli(database_url, "users", "add", "--email", f"u{i}@example.com",
                     "--password-stdin", "--scope", "reports", stdin=PASSWORD
                     ).stdout.strip() for i in range(3))

    shown = cli(database_url, "users", "show", "--email", "U1@example.com")
    first_page = cli(database_url, "users", "list", "--limit", "2")
    second_page = cli(database_url, "users", "list", "--after", ids[1])
    missing = cli(database_url, "users", "show", "--username", "nobody")

    user = json.loads(shown.stdout)
    assert (user["email"], user["scopes"], user["disabled"]) == (
        "u1@example.com", ["reports"], False)
    assert [json.loads(line)["id"] for line in first_page.stdout.splitlines()] == ids[:2]
    assert [json.loads(line)["id"] for line in second_page.stdout.splitlines()] == ids[2:]
    assert (missing.returncode, missing.stderr) == (2, "authsvc: error: No such user.\n")


def test_events_refuses_an_unknown_kind_and_lists_the_known_ones(database_url):
    """`events --kind bogus` is a usage error naming every kind; a prefix is fine."""
    bogus = cli(database_url, "events", "--kind", "bogus")
    prefix = cli(database_url, "events", "--kind", "key")

    assert bogus.returncode == 2
    assert bogus.stderr.startswith("authsvc: error: kind: must be one of signin.success, ")
    assert prefix.returncode == 0 and '"kind":"key.created"' in prefix.stdout


def test_every_event_kind_the_code_writes_is_in_the_vocabulary():
    """KINDS lists every audit kind any module writes, so --kind can check against it."""
    written = set()
    for path in PACKAGE.rglob("*.py"):
        written |= set(re.findall(r"events\.record\([^,]+, \"([a-z_]+\.[a-z_]+)\"",
                                  path.read_text()))
    written |= set(re.findall(r"'([a-z_]+\.[a-z_]+)'",
                              (PACKAGE / "store" / "sessions.py").read_text()))

    assert written and written <= set(KINDS)
