"""The Supabase Auth adapter reads a real ``auth.users`` CSV (Supabase Auth v2.196.0,
made by scripts/peers/supabase-auth) into the import format: every password it
carries checks against the one the user signed up with."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from authsvc.importing import Unconvertible, supabase
from tests.fixtures.peers import FIXTURES
from tests.fixtures.peers.passwords import matches

CSV = (FIXTURES / "supabase" / "auth-users.csv").read_text()
MANIFEST = json.loads((FIXTURES / "supabase" / "manifest.json").read_text())
NOW = datetime(2027, 1, 1, tzinfo=UTC)
RECORDS = list(supabase.users(io.StringIO(CSV, newline=""), now=NOW))
BY_LOGIN = {r.get("email", r.get("phone")): r for r in RECORDS}


def _login(entry: dict[str, Any]) -> str:
    return str(entry.get("email") or entry["phone"])


def test_every_row_becomes_one_record():
    """One record per auth.users row, keyed by its id."""
    ids = [row["id"] for row in csv.DictReader(io.StringIO(CSV, newline=""))]
    assert [r["external_id"] for r in RECORDS] == [f"supabase:{i}" for i in ids]
    assert sorted(BY_LOGIN) == sorted(_login(e) for e in MANIFEST)


@pytest.mark.parametrize("entry", MANIFEST, ids=_login)
def test_each_password_checks_against_the_original(entry):
    """The carried hash (bcrypt from sign-up, argon2 and Firebase scrypt from the admin
    API) accepts the user's password and refuses another."""
    password = BY_LOGIN[_login(entry)]["password"]
    assert password["scheme"] == entry["scheme"]
    assert matches(password, entry["password"])
    assert not matches(password, entry["password"] + "x")


@pytest.mark.parametrize("entry", MANIFEST, ids=_login)
def test_confirmation_and_ban_carry_over(entry):
    """email/phone_confirmed_at become the verified flags; a ban still running, disabled."""
    record = BY_LOGIN[_login(entry)]
    assert record.get("email_verified", False) == entry.get("email_verified", False)
    assert record.get("phone_verified", False) == entry.get("phone_verified", False)
    assert record.get("disabled", False) == entry.get("disabled", False)


def test_the_phone_is_written_in_e164_with_its_plus():
    """Supabase keeps +15551234567 as 15551234567; the record has the +."""
    record = BY_LOGIN["+15551234567"]
    assert "email" not in record and record["phone_verified"] is True


def test_created_at_is_rfc3339_utc():
    """created_at keeps the row's microseconds, in UTC."""
    row = next(csv.DictReader(io.StringIO(CSV, newline="")))
    record = RECORDS[0]
    assert record["created_at"].endswith("Z")
    assert datetime.fromisoformat(record["created_at"]) == datetime.fromisoformat(
        row["created_at"])


def test_a_ban_that_has_ended_does_not_disable():
    """banned_until in the past (as of ``now``) leaves the user enabled."""
    later = datetime(2200, 1, 1, tzinfo=UTC)
    records = {r.get("email"): r for r in supabase.users(io.StringIO(CSV, newline=""),
                                                          now=later)}
    assert "disabled" not in records["grace@example.com"]


def _rows(**changes: str) -> io.StringIO:
    """The fixture's first row with ``changes``, as a CSV of its own."""
    reader = csv.DictReader(io.StringIO(CSV, newline=""))
    row = {**next(reader), **changes}
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    return io.StringIO(out.getvalue(), newline="")


def test_a_user_without_a_password_is_carried_over_without_one():
    """An empty encrypted_password (provider or link sign-in) means no password object."""
    (record,) = supabase.users(_rows(encrypted_password=""), now=NOW)
    assert "password" not in record and record["email"] == "ada@example.com"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"deleted_at": "2026-12-07 11:20:04.1+00"}, "deleted"),
    ({"is_anonymous": "t", "email": ""}, "anonymous"),
    ({"encrypted_password": "5f4dcc3b5aa765d61d8327deb882cf99"}, "not bcrypt"),
])
def test_rows_that_cannot_be_carried_over_are_refused_with_the_reason(changes, reason):
    """Deleted and anonymous users and unknown hashes go to on_refused, never dropped."""
    refused: list[Unconvertible] = []
    assert list(supabase.users(_rows(**changes), now=NOW, on_refused=refused.append)) == []
    assert len(refused) == 1 and reason in refused[0].reason
    with pytest.raises(Unconvertible):
        list(supabase.users(_rows(**changes), now=NOW))


def test_the_command_writes_lines_and_lists_refusals(tmp_path, capsys):
    """python -m authsvc.importing.supabase: JSON lines on stdout, refusals and a count
    on stderr."""
    path = tmp_path / "auth-users.csv"
    path.write_text(CSV)
    deleted = tmp_path / "deleted.csv"
    deleted.write_text(_rows(deleted_at="2026-12-07 11:20:04.1+00").getvalue())

    assert supabase.main([str(path)], now=NOW) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == RECORDS
    assert err == f"supabase: {len(RECORDS)} users written, 0 refused\n"

    assert supabase.main([str(deleted)], now=NOW) == 0
    out, err = capsys.readouterr()
    assert out == "" and "deleted" in err.splitlines()[0]


def test_the_command_stops_at_a_missing_file(tmp_path, capsys):
    """A missing file: status 2 and its name on stderr."""
    assert supabase.main([str(tmp_path / "none.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err
