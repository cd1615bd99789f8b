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
  of the import is authsvc's own work.

``python -m bench --import-only --import-users 1000000`` runs just this (results in
``bench/results/importing-latest.json``); the full benchmark runs it last with
``--import-users N``.
"""

from __future__ import annotations

import asyncio
import json
import os
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


def measure(count: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-import-") as tmp, \
            embedded_database() as (data_dir, url):
        path = write_file(Path(tmp) / "users.jsonl", count)
        command = import_command(path, "--data-dir", str(data_dir))
        t0 = time.perf_counter()
        first = _run(command)
        imported = time.perf_counter() - t0
        t0 = time.perf_counter()
        _run(command)
        rerun = time.perf_counter() - t0
        copy = asyncio.run(_copy_baseline(url, count))
    summary = json.loads(first.stdout.splitlines()[-1])["summary"]
    result = {"users": count, "created": summary["created"],
              "import_users_per_s": round(count / imported),
              "rerun_users_per_s": round(count / rerun),
              "copy_users_per_s": round(count / copy),
              "import_to_copy": round(copy / imported, 3),
              "cpus": os.cpu_count(), "load_before": load_before,
              "load_after": os.getloadavg()}
    print(f"  import {count} users: {result['import_users_per_s']:,} users/s "
          f"(re-run, all skipped: {result['rerun_users_per_s']:,}/s); plain COPY "
          f"{result['copy_users_per_s']:,}/s; import/COPY = {result['import_to_copy']}",
          flush=True)
    return result


def write(result: dict[str, Any], out_dir: Path) -> None:
    """``importing-latest.json`` and a dated copy under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "import": result}, indent=1) + "\n"
    (out_dir / "importing-latest.json").write_text(body)
    (out_dir / f"importing-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}.json").write_text(body)
