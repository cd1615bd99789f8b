"""Importing users: ``authsvc users import`` of N synthetic users against a plain COPY.

The file is N lines of the import format, each with a bcrypt hash (one hash, made
once: the import never hashes, so the cost does not matter), a verified email and
a created time. Measured on an embedded PostgreSQL:

- ``import``: the whole command, a process started on the file (parsing,
  checking, batches of 1000 in their transactions), users/s;
- ``rerun``: the same file again, every line skipped (idempotence), users/s;
- ``copy``: the same rows, already parsed, written by one ``COPY`` into a table
  shaped like ``users`` with its unique indexes (``LIKE users INCLUDING ALL``):
  what PostgreSQL alone takes to store them; the ratio import/copy says how much
  of the import is authsvc's own work;
- ``kill``: on a fresh database, the same file imported by a real process that is
  sent SIGKILL once the database holds about half of it (the count of users with
  the ``bench:`` external id, polled; never a timer), then run again to the end.
  Checked from the database: the killed run committed whole batches only (the
  first lines of the file, in batches, each with its audit row), and after the
  re-run every line is there exactly once with its own identifiers; checked from
  the re-run's summary: created + skipped = N, skipped = what the killed run left.
  The numbers and the outcome of each check are in the results (``kill``);
  ``--import-only`` exits non-zero when a check fails.

``python -m bench --import-only --import-users 1000000`` runs just this (results in
``bench/results/importing-latest.json`` and a dated ``importing-YYYY-MM-DD-HHMM.json``,
the one docs/performance.md shows after ``python -m bench.page --write``); the full
benchmark runs it last with ``--import-users N``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt

from .service import embedded_database

_HASH = bcrypt.hashpw(b"synthetic password", bcrypt.gensalt(10)).decode()


def synthetic_lines(count: int, start: int = 0) -> Iterator[bytes]:
    """``count`` import-format lines, users ``start`` … ``start + count - 1``."""
    for i in range(start, start + count):
        yield (json.dumps({
            "external_id": f"bench:{i}", "email": f"user{i}@example.com",
            "email_verified": True, "password": {"scheme": "bcrypt", "hash": _HASH},
            "created_at": "2024-05-01T10:00:00+00:00"}, separators=(",", ":")) + "\n").encode()


def write_file(path: Path, count: int) -> Path:
    with path.open("wb") as out:
        out.writelines(synthetic_lines(count))
    return path


def import_command(path: Path, *target: str) -> list[str]:
    """``authsvc users import PATH`` against ``target`` (``--data-dir D`` or
    ``--database-url U``)."""
    return [sys.executable, "-m", "authsvc", "users", "import", str(path), *target]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=True)


async def _copy_baseline(url: str, count: int) -> float:
    """Seconds for one COPY of the same rows into a table shaped like users."""
    created = datetime(2024, 5, 1, 10, tzinfo=UTC)
    records = [(uuid.uuid4(), f"bench:{i}", f"user{i}@example.com", None, None,
                '$authsvc-import${"hash":"' + _HASH + '","scheme":"bcrypt"}', [], created,
                created, None, created, created, None) for i in range(count)]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS copy_baseline;"
                           " CREATE TABLE copy_baseline (LIKE users INCLUDING ALL)")
        t0 = time.perf_counter()
        await conn.copy_records_to_table(
            "copy_baseline", records=records,
            columns=["id", "external_id", "email", "phone", "username", "password_hash",
                     "scopes", "created_at", "updated_at", "disabled_at", "verified_at",
                     "email_verified_at", "phone_verified_at"])
        seconds = time.perf_counter() - t0
        await conn.execute("DROP TABLE copy_baseline")
        return seconds
    finally:
        await conn.close()


BATCH = 1000  # the command's default --batch-size, given explicitly to the kill phase
_POLL = 0.5  # seconds between two counts while waiting for the kill point


async def _imported(url: str) -> int:
    """Users with the benchmark's external id (none before the command has created the
    schema of the fresh database)."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM users WHERE external_id LIKE 'bench:%'"))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def _killed_rows(url: str) -> dict[str, int]:
    """What a killed run left: its users, the lowest and highest line among them,
    and their audit rows."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS users,"
            " coalesce(min(substr(external_id, 7)::bigint), -1) AS first_line,"
            " coalesce(max(substr(external_id, 7)::bigint), -1) AS last_line,"
            " (SELECT count(*) FROM auth_events WHERE kind = 'user.imported') AS audit_rows"
            " FROM users WHERE external_id LIKE 'bench:%'")
        return dict(row)
    finally:
        await conn.close()


async def _final_rows(url: str) -> dict[str, int]:
    """After the re-run: every user, the distinct external ids and identifiers, the
    users whose email is their own line's, and the audit rows."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS users,"
            " count(*) FILTER (WHERE external_id LIKE 'bench:%') AS bench_users,"
            " count(DISTINCT external_id) AS distinct_external_ids,"
            " count(DISTINCT email) AS distinct_emails,"
            " count(phone) - count(DISTINCT phone) AS repeated_phones,"
            " count(username) - count(DISTINCT username) AS repeated_usernames,"
            " count(*) FILTER (WHERE email = 'user' || substr(external_id, 7)"
            "                  || '@example.com') AS own_email,"
            " (SELECT count(*) FROM auth_events WHERE kind = 'user.imported') AS audit_rows"
            " FROM users")
        return dict(row)
    finally:
        await conn.close()


async def _kill_midway(command: list[str], url: str, kill_at: int
                       ) -> tuple[int, float, int]:
    """Start the import, SIGKILL it once ``kill_at`` users are in; its exit status, the
    seconds it ran, and how many users the database counted when the signal went."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=out, stderr=asyncio.subprocess.STDOUT)
        try:
            while (seen := await _imported(url)) < kill_at:
                if process.returncode is not None:
                    out.seek(0)
                    raise RuntimeError(
                        f"the import ended (status {process.returncode}) before it was "
                        f"killed, at {seen} users: {out.read()[-2000:].decode(errors='replace')}")
                await asyncio.sleep(_POLL)
            process.send_signal(signal.SIGKILL)
            status = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        return status, time.perf_counter() - t0, seen


def kill_and_rerun(path: Path, count: int, data_dir: Path, url: str) -> dict[str, Any]:
    """The ``kill`` phase on an empty database (see the module's docstring)."""
    if count < 3 * BATCH:
        raise SystemExit(f"bench: the kill phase needs at least {3 * BATCH} users")
    command = [*import_command(path, "--data-dir", str(data_dir)), "--batch-size", str(BATCH)]
    kill_at = max(BATCH, count // 2)
    status, ran, seen = asyncio.run(_kill_midway(command, url, kill_at))
    killed = asyncio.run(_killed_rows(url))
    t0 = time.perf_counter()
    rerun = _run(command)
    rerun_seconds = time.perf_counter() - t0
    summary = json.loads(rerun.stdout.splitlines()[-1])["summary"]
    final = asyncio.run(_final_rows(url))
    left = killed["users"]
    checks = {
        # SIGKILL, mid-way: after the kill point, before the end
        "killed_midway": status == -signal.SIGKILL and kill_at <= left < count,
        # the killed run's users are the file's first lines, whole batches, audited
        "whole_batches": (left % BATCH == 0 and killed["first_line"] == 0
                          and killed["last_line"] == left - 1
                          and killed["audit_rows"] == left),
        "rerun_summary": (summary["created"] + summary["skipped"] == count
                          and summary["skipped"] == left and summary["refused"] == 0),
        "exactly_once": (final["users"] == final["bench_users"] == count
                         and final["distinct_external_ids"] == count
                         and final["distinct_emails"] == count
                         and final["repeated_phones"] == final["repeated_usernames"] == 0
                         and final["own_email"] == count and final["audit_rows"] == count),
    }
    return {"batch_size": BATCH, "kill_at_users": kill_at, "seen_at_kill": seen,
            "killed_status": status, "killed_seconds": round(ran, 1),
            "killed_committed": left, "killed_batches": left // BATCH,
            "killed_first_line": killed["first_line"], "killed_last_line": killed["last_line"],
            "killed_audit_rows": killed["audit_rows"],
            "rerun_created": summary["created"], "rerun_skipped": summary["skipped"],
            "rerun_refused": summary["refused"], "rerun_seconds": round(rerun_seconds, 1),
            "rerun_users_per_s": round(count / rerun_seconds),
            "final": final, "checks": checks, "ok": all(checks.values())}


def measure(count: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-import-") as tmp:
        path = write_file(Path(tmp) / "users.jsonl", count)
        with embedded_database() as (data_dir, url):
            command = import_command(path, "--data-dir", str(data_dir))
            t0 = time.perf_counter()
            first = _run(command)
            imported = time.perf_counter() - t0
            t0 = time.perf_counter()
            _run(command)
            rerun = time.perf_counter() - t0
            copy = asyncio.run(_copy_baseline(url, count))
        load_kill = os.getloadavg()
        with embedded_database() as (data_dir, url):
            kill = kill_and_rerun(path, count, data_dir, url)
    summary = json.loads(first.stdout.splitlines()[-1])["summary"]
    result = {"users": count, "created": summary["created"],
              "import_users_per_s": round(count / imported),
              "rerun_users_per_s": round(count / rerun),
              "copy_users_per_s": round(count / copy),
              "import_to_copy": round(copy / imported, 3),
              "cpus": os.cpu_count(), "load_before": load_before,
              "load_after": os.getloadavg(), "kill": {**kill, "load_before": load_kill}}
    print(f"  import {count} users: {result['import_users_per_s']:,} users/s "
          f"(re-run, all skipped: {result['rerun_users_per_s']:,}/s); plain COPY "
          f"{result['copy_users_per_s']:,}/s; import/COPY = {result['import_to_copy']}",
          flush=True)
    print(f"  killed (SIGKILL) at {kill['killed_committed']:,} users "
          f"({kill['killed_batches']} batches of {BATCH}); the re-run created "
          f"{kill['rerun_created']:,} and skipped {kill['rerun_skipped']:,} "
          f"({kill['rerun_users_per_s']:,} users/s); checks: "
          + ", ".join(f"{name} {'ok' if ok else 'FAILED'}"
                      for name, ok in kill["checks"].items()), flush=True)
    return result


def write(result: dict[str, Any], out_dir: Path) -> None:
    """``importing-latest.json`` and a dated copy under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "import": result}, indent=1) + "\n"
    (out_dir / "importing-latest.json").write_text(body)
    (out_dir / f"importing-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}.json").write_text(body)
