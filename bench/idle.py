"""What an idle ``authsvc serve`` costs: database transactions, CPU and memory.

``python -m bench.idle [--workers 2] [--seconds 30]`` starts ``authsvc serve``
on an embedded PostgreSQL, lets it settle, then counts over ``--seconds`` with
nobody calling: the transactions its database committed and rolled back
(``pg_stat_database``, less those of a serve stopped as soon as it is
ready: start-up and shutdown), the CPU time of the serve
process and its workers, and the RSS and PSS of each process
(``bench.footprint``). Prints one JSON object; with ``--out`` also writes it
as ``idle-latest.json`` there.

The default window is one housekeeping pass (30 s) and a little more.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
from pathlib import Path
from typing import Any

import asyncpg

from . import footprint, report
from .service import ROOT, Service, embedded_database, process_cpu_seconds, running

STATS = ("SELECT xact_commit + xact_rollback FROM pg_stat_database"
         " WHERE datname = current_database()")
READER = 1  # a reading's own transaction, counted by the next reading


async def transactions(url: str) -> int:
    """Transactions the database has ended so far, read on a connection of its own."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(STATS))
    finally:
        await conn.close()


# Both outbox receivers configured, so each worker runs their loops; nothing listens
# there, and nothing is sent (the outbox is empty): only the loops' looks count.
CHANNELS = {"AUTHSVC_SMTP_URL": "smtp://127.0.0.1:9", "AUTHSVC_SMTP_FROM": "bench@example.com",
            "AUTHSVC_WEBHOOK_URL": "http://127.0.0.1:9/notify",
            "AUTHSVC_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"b" * 32).decode()}


def lifetime(data_dir: Path, url: str, port: int, workers: int, idle: float,
             env: dict[str, str] | None = None, source: Path = ROOT,
             ) -> tuple[int, dict[str, Any]]:
    """Transactions over one ``serve`` from start to stop, ``idle`` seconds after it is
    ready; and its CPU time and processes' memory at the end of the idle time.

    Counted from before it starts to after it stopped: PostgreSQL publishes a
    backend's counts when it has been idle a while, or when it exits, so only a
    count around the whole life of the connections is exact."""
    before = asyncio.run(transactions(url))
    with running(Service(data_dir, port, workers, env, source=source)) as service:
        pids = service.processes()
        cpu0 = sum(process_cpu_seconds(p) for p in pids)
        t0 = time.monotonic()
        time.sleep(idle)
        seconds = time.monotonic() - t0
        cpu = sum(process_cpu_seconds(p) for p in pids) - cpu0
        snap = footprint.snapshot(service, {})
    after = asyncio.run(transactions(url))
    return after - before - READER, {"seconds": seconds, "cpu_seconds": cpu, "processes": snap}


def measure(data_dir: Path, url: str, port: int, workers: int, idle: float,
            env: dict[str, str] | None = None, source: Path = ROOT) -> dict[str, Any]:
    """The transactions of a serve idle for ``idle`` seconds less those of one stopped
    as soon as it is ready (start-up and shutdown), per second and per worker; with
    both outbox receivers configured unless ``env`` says otherwise."""
    env = {**CHANNELS, **(env or {})}
    baseline, _ = lifetime(data_dir, url, port, workers, 0.0, env, source)
    total, run = lifetime(data_dir, url, port, workers, idle, env, source)
    idle_tx = total - baseline
    seconds = run["seconds"]
    return {
        "workers": workers, "seconds": round(seconds, 2), "outbox_receivers": 2,
        "transactions": idle_tx, "start_and_stop_transactions": baseline,
        "transactions_per_second": round(idle_tx / seconds, 3),
        "transactions_per_worker_second": round(idle_tx / seconds / workers, 3),
        "cpu_seconds": round(run["cpu_seconds"], 3),
        "cpu_percent": round(100 * run["cpu_seconds"] / seconds, 2),
        "processes": run["processes"],
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=32.0, help="seconds idle")
    p.add_argument("--port", type=int, default=50651)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--baseline", type=Path, default=None,
                   help="another checkout (e.g. `git archive main | tar -x -C DIR`), "
                   "measured the same way right after this one")
    args = p.parse_args()
    load_before = os.getloadavg()
    with embedded_database() as (data_dir, url):
        result: dict[str, Any] = measure(data_dir, url, args.port, args.workers, args.seconds)
        if args.baseline is not None:
            result = {"this": result, "baseline": measure(
                data_dir, url, args.port, args.workers, args.seconds, source=args.baseline)}
    result["load_before"], result["load_after"] = load_before, os.getloadavg()
    report.emit(result, args.out, "idle")


if __name__ == "__main__":
    main()
