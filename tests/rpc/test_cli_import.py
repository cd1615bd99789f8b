"""`authsvc users import`: what each line becomes and why, dry runs that change
nothing, re-runs that skip, weak hashes only on request, and `--status`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import bcrypt

from ..helpers import KEK
from ..helpers import authsvc as cli

BCRYPT = bcrypt.hashpw(b"old password 1", bcrypt.gensalt(4)).decode()
MD5 = {"scheme": "md5", "salt": "KQ8zeK6wKRuR", "hash": "0137e4d74cb2d9ed9cb1a5f391f6175e"}


def _line(external_id: str, **fields: object) -> str:
    return json.dumps({"external_id": external_id, **fields})


LINES = [
    _line("src:1", email="ada@example.com", email_verified=True, phone="+15551234567",
          password={"scheme": "bcrypt", "hash": BCRYPT}, scopes=["reports"],
          created_at="2019-05-01T10:00:00+02:00", disabled=True),
    _line("src:2", username="grace", password={"scheme": "bcrypt", "hash": "$2b$10$short"}),
    _line("src:3", email="linus@example.com", password=MD5),
    _line("src:4", email="ADA@example.com"),  # the same email as line 1
    _line("src:5", email="ken@example.com", colour="blue"),
    "not json",
    _line("src:1", email="ada@example.com"),  # line 1 again
]


def _file(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _outcomes(stdout: str) -> tuple[list[dict[str, object]], dict[str, object]]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    return rows[:-1], rows[-1]["summary"]


def _users(database_url: str) -> list[asyncpg.Record]:
    async def read() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(
                "SELECT external_id, email, phone, username, scopes, created_at,"
                " disabled_at IS NOT NULL AS disabled,"
                " email_verified_at IS NOT NULL AS email_verified,"
                " phone_verified_at IS NOT NULL AS phone_verified,"
                " verified_at IS NOT NULL AS verified,"
                " password_hash LIKE '$authsvc-import$%' AS foreign_hash"
                " FROM users WHERE external_id IS NOT NULL ORDER BY external_id")
        finally:
            await conn.close()
    return asyncio.run(read())


def test_import_reports_refused_and_skipped_lines_with_their_reason(database_url, tmp_path):
    """Each refused line names its field and why; the summary counts every outcome."""
    done = cli(database_url, "users", "import", _file(tmp_path, LINES))

    outcomes, summary = _outcomes(done.stdout)
    assert done.returncode == 0, done.stderr
    assert outcomes == [
        {"line": 2, "external_id": "src:2", "outcome": "refused", "field": "password.hash",
         "reason": "must be a bcrypt string ($2a$, $2b$ or $2y$, cost 4-31)"},
        {"line": 3, "external_id": "src:3", "outcome": "refused", "field": "password.scheme",
         "reason": "md5 is a fast hash, refused unless weak hashes are allowed"},
        {"line": 5, "external_id": "src:5", "outcome": "refused", "field": "colour",
         "reason": "is not a field of the import format"},
        {"line": 6, "external_id": None, "outcome": "refused", "field": "line",
         "reason": "must be one JSON object"},
        {"line": 4, "external_id": "src:4", "outcome": "refused", "field": "email",
         "reason": "already taken by another user"},
        {"line": 7, "external_id": "src:1", "outcome": "skipped", "field": "external_id",
         "reason": "already imported"},
    ]
    assert summary == {"created": 1, "skipped": 1, "refused": 5, "weak_refused": 1,
                       "weak_created": 0, "lines": 7, "schemes": {"bcrypt": 1},
                       "dry_run": False}
    [ada] = _users(database_url)
    assert (ada["email"], ada["phone"], ada["scopes"]) == ("ada@example.com", "+15551234567",
                                                          ["reports"])
    assert (ada["email_verified"], ada["phone_verified"], ada["verified"],
            ada["foreign_hash"], ada["disabled"]) == (True, False, True, True, True)
    assert ada["created_at"].isoformat() == "2019-05-01T08:00:00+00:00"


def test_a_second_run_of_the_same_file_changes_nothing(database_url, tmp_path):
    """Re-running skips every line imported before: no user twice, none changed."""
    path = _file(tmp_path, LINES[:1] + [_line(f"src:{i}", email=f"u{i}@example.com")
                                        for i in range(10, 30)])
    first = cli(database_url, "users", "import", path, "--batch-size", "7")
    before = _users(database_url)
    second = cli(database_url, "users", "import", path, "--batch-size", "7")

    assert _outcomes(first.stdout)[1]["created"] == 21
    outcomes, summary = _outcomes(second.stdout)
    assert (summary["created"], summary["skipped"], summary["refused"]) == (0, 21, 0)
    assert {o["outcome"] for o in outcomes} == {"skipped"}
    assert _users(database_url) == before


def test_a_dry_run_reports_every_line_and_changes_nothing(database_url, tmp_path):
    """--dry-run: what each line would become (repeats across batches included), and
    no user, factor or audit row written."""
    lines = [*LINES, _line("src:8", email="ada@example.com")]
    dry = cli(database_url, "users", "import", _file(tmp_path, lines), "--dry-run",
              "--batch-size", "2")
    real = cli(database_url, "users", "import", _file(tmp_path, lines), "--batch-size", "2")

    outcomes, summary = _outcomes(dry.stdout)
    assert dry.returncode == 0, dry.stderr
    assert sorted((o["line"], o["outcome"], o.get("field")) for o in outcomes) == [
        (1, "created", None), (2, "refused", "password.hash"),
        (3, "refused", "password.scheme"), (4, "refused", "email"),
        (5, "refused", "colour"), (6, "refused", "line"), (7, "skipped", "external_id"),
        (8, "refused", "email")]
    assert summary["dry_run"] is True
    assert {k: v for k, v in summary.items() if k != "dry_run"} == {
        k: v for k, v in _outcomes(real.stdout)[1].items() if k != "dry_run"}


def test_a_dry_run_writes_nothing(database_url, tmp_path):
    """After a dry run the database holds no imported user and no import event."""
    dry = cli(database_url, "users", "import", _file(tmp_path, LINES), "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert _users(database_url) == []
    events = cli(database_url, "events", "--kind", "user.imported")
    assert events.stdout == ""


def test_weak_hashes_are_imported_only_when_allowed_and_reported(database_url, tmp_path):
    """--allow-weak-hashes imports md5 users and names each one on stdout; `--status`
    counts the users still on a foreign hash, by scheme."""
    path = _file(tmp_path, LINES[:1] + LINES[2:3])
    done = cli(database_url, "users", "import", path, "--allow-weak-hashes")
    status = cli(database_url, "users", "import", "--status")

    outcomes, summary = _outcomes(done.stdout)
    assert outcomes == [{"line": 2, "external_id": "src:3", "outcome": "created",
                         "reason": "weak hash (md5), allowed"}]
    assert (summary["created"], summary["weak_created"]) == (2, 1)
    assert json.loads(status.stdout) == {"imported": 2, "foreign_hash": 2,
                                         "schemes": {"bcrypt": 1, "md5": 1}}


def test_import_refuses_bad_invocations_naming_the_argument(database_url, tmp_path):
    """No FILE, FILE with --status, an unreadable FILE or a batch size of 0: exit 2 and
    one line naming the argument."""
    missing = cli(database_url, "users", "import")
    both = cli(database_url, "users", "import", _file(tmp_path, LINES), "--status")
    unreadable = cli(database_url, "users", "import", str(tmp_path / "nope.jsonl"))
    no_batch = cli(database_url, "users", "import", _file(tmp_path, LINES), "--batch-size", "0")

    assert (missing.returncode, missing.stderr) == (
        2, "authsvc: error: file: give the file to import (or - for standard input)\n")
    assert (both.returncode, both.stderr) == (
        2, "authsvc: error: file: give either FILE or --status\n")
    assert (unreadable.returncode, unreadable.stderr) == (
        2, "authsvc: error: file: cannot be read (No such file or directory)\n")
    assert (no_batch.returncode, no_batch.stderr) == (
        2, "authsvc: error: batch_size: must be between 1 and 100000\n")


def test_import_reads_standard_input(database_url):
    """FILE - reads the lines from standard input."""
    done = cli(database_url, "users", "import", "-", stdin="\n".join(LINES[:1]) + "\n")

    assert _outcomes(done.stdout)[1]["created"] == 1


def test_a_progress_line_goes_to_a_terminal_only(database_url, tmp_path):
    """With stderr a terminal: lines read, users/s, percentage and ETA, rewritten in
    place; with stderr a pipe: nothing but JSON on stdout."""
    path = _file(tmp_path, [_line(f"src:{i}", email=f"u{i}@example.com") for i in range(50)])
    command = [sys.executable, "-m", "authsvc", "users", "import", path, "--batch-size", "10",
               "--database-url", database_url]
    env = {**os.environ, "AUTHSVC_KEY_ENCRYPTION_KEY": KEK}
    controller, terminal = pty.openpty()
    try:
        on_terminal = subprocess.run(command, stdout=subprocess.PIPE, stderr=terminal, env=env,
                                     text=True, timeout=60, check=False)
        os.close(terminal)
        drawn = b""
        with contextlib.suppress(OSError):  # EIO once the terminal's other end is closed
            while chunk := os.read(controller, 4096):
                drawn += chunk
    finally:
        os.close(controller)
    piped = cli(database_url, "users", "import", path)

    assert on_terminal.returncode == 0
    assert re.search(rb"\r50 lines  [\d,]+ users/s  100%  ETA 0m00s", drawn), drawn
    assert piped.stderr == ""
    assert _outcomes(piped.stdout)[1]["skipped"] == 50
