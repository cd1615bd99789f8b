"""An import killed with SIGKILL mid-way loses nothing and duplicates nothing: the
batches it committed are there whole, and running it again completes it.

20,000 synthetic users (the benchmark's generator), batches of 500, a real
``authsvc users import`` process killed once some batches are in and before the
last one is.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess

import asyncpg

from bench.importing import import_command, write_file

from ..helpers import KEK, eventually

USERS = 20_000


async def _count(database_url: str) -> tuple[int, int, int]:
    """Imported users, distinct external ids, and import audit rows."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT external_id) AS ids,"
            " (SELECT count(*) FROM auth_events WHERE kind = 'user.imported') AS events"
            " FROM users WHERE external_id LIKE 'bench:%'")
        return row["n"], row["ids"], row["events"]
    finally:
        await conn.close()


async def test_a_killed_import_completes_when_run_again(database_url, tmp_path):
    """SIGKILL mid-way: whole batches only; the re-run creates the rest, skips the rest."""
    path = write_file(tmp_path / "users.jsonl", USERS)
    command = [*import_command(path, "--database-url", database_url), "--batch-size", "500"]
    env = {**os.environ, "AUTHSVC_KEY_ENCRYPTION_KEY": KEK}
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def some_batches_in() -> bool:
            assert process.returncode is None, "the import ended before it was killed"
            return (await _count(database_url))[0] >= 1500

        await eventually(some_batches_in, 120, "three batches imported")
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    killed_at, _, _ = await _count(database_url)

    rerun = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True,
                                    text=True, timeout=300, check=False)
    again = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True,
                                    text=True, timeout=300, check=False)

    assert process.returncode == -signal.SIGKILL
    assert killed_at % 500 == 0 and 1500 <= killed_at < USERS
    summary = json.loads(rerun.stdout.splitlines()[-1])["summary"]
    assert (summary["created"], summary["skipped"], summary["refused"]) == (
        USERS - killed_at, killed_at, 0)
    assert json.loads(again.stdout.splitlines()[-1])["summary"]["created"] == 0
    assert await _count(database_url) == (USERS, USERS, USERS)
