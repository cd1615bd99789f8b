"""Server CPU per Refresh, counted: one worker's CPU time over a run of Refresh calls,
divided by the calls.

``python -m bench.refresh_cpu [--calls 3000] [--profile FILE]`` signs in
``--calls`` sessions on a seeding server (cheap argon2 profile), starts
``authsvc serve --workers 1`` with the benchmark's settings, and spends each
refresh token once from this process (a Python gRPC client, ``--concurrency``
calls at a time). The worker's user and system CPU time (``/proc``) before and
after is the measure: a count of the process's own work, unaffected by what
else the machine runs except through caches. With ``--profile`` the worker is
sampled by py-spy (``bench.profile``: the samples holding the GIL; speedscope or
``raw`` by the name's ending) during
a last round of the same size. With ``--baseline DIR`` (another checkout) a
server of that checkout is measured too, its rounds alternating with this
one's, so both see the same machine. Prints one JSON object; with ``--out``
writes it as ``refresh-cpu-latest.json`` there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

import grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from . import profile, report, seed
from .seed import PASSWORD
from .service import ROOT, Service, add_user, embedded_database, process_cpu_seconds, running

ENV = {"AUTHSVC_ACCESS_TOKEN_TTL": "7200", "AUTHSVC_ARGON2_PROFILE": "owasp",
       **{f"AUTHSVC_THROTTLE_{counter}_FREE": "1000000"
          for counter in ("IDENTIFIER", "ADDRESS", "PAIR", "REFRESH")}}
CHEAP = {**ENV, "AUTHSVC_ARGON2_PROFILE": "test-only-cheapest"}


async def refresh_all(target: str, tokens: list[str], concurrency: int) -> int:
    """Spend every token once; the calls that failed."""
    failed = 0
    queue = list(reversed(tokens))
    async with grpc.aio.insecure_channel(target) as channel:
        auth = auth_pb2_grpc.AuthStub(channel)

        async def lane() -> None:
            nonlocal failed
            while queue:
                token = queue.pop()
                try:
                    await auth.Refresh(auth_pb2.RefreshRequest(refresh_token=token))
                except grpc.aio.AioRpcError:
                    failed += 1

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return failed


def run(service: Service, tokens: list[str], concurrency: int,
        profile_file: Path | None = None) -> dict[str, Any]:
    (worker,) = service.worker_pids() or [service.pid]
    with (profile.sampled(worker, profile_file) if profile_file is not None
          else contextlib.nullcontext()):
        cpu0, t0 = process_cpu_seconds(worker), time.monotonic()
        failed = asyncio.run(refresh_all(service.target, tokens, concurrency))
        seconds, cpu = time.monotonic() - t0, process_cpu_seconds(worker) - cpu0
    return {"calls": len(tokens), "failed": failed, "seconds": round(seconds, 2),
            "rate": round(len(tokens) / seconds, 1), "worker_cpu_seconds": round(cpu, 3),
            "cpu_ms_per_call": round(1000 * cpu / len(tokens), 3)}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.refresh_cpu",
                                description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=2, help="runs of --calls, each counted")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--port", type=int, default=50671)
    p.add_argument("--profile", type=Path, default=None)
    p.add_argument("--uvloop", action="store_true", help="the worker on uvloop's event loop")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another checkout (e.g. `git archive main | tar -x -C DIR`): its "
                   "server is measured too, rounds alternating with this checkout's")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rounds = args.rounds + (1 if args.profile else 0)
    load_before = os.getloadavg()
    checkouts = 2 if args.baseline else 1
    with embedded_database() as (data_dir, _url):
        add_user(data_dir, "seed@example.com", PASSWORD, CHEAP)
        with running(Service(data_dir, args.port, 1, CHEAP)) as service:
            sessions = asyncio.run(seed.sign_in(service.target, "seed@example.com", PASSWORD,
                                                args.calls * rounds * checkouts + 200))
        tokens = [s.refresh_token for s in sessions]
        sources = {"this": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
        for i in range(rounds):
            for k, (name, source) in enumerate(sources.items()):
                n = i * len(sources) + k
                batch = tokens[n * args.calls:(n + 1) * args.calls]
                sampled = (args.profile if args.profile and i == rounds - 1 and name == "this"
                           else None)
                service = Service(data_dir, args.port, 1, ENV, uvloop=args.uvloop,
                                  source=source)
                with running(service):
                    asyncio.run(refresh_all(service.target, tokens[-200:][k::2], 8))  # warm
                    results[name].append(run(service, batch, args.concurrency, sampled))
    out: dict[str, Any] = {"load_before": load_before, "load_after": os.getloadavg()}
    for name, rows in results.items():
        counted = [r["cpu_ms_per_call"] for r in rows[:args.rounds]]
        out[name] = {"rounds": rows, "cpu_ms_per_call_median": statistics.median(counted),
                     "cpu_ms_per_call_min": min(counted)}
    if (sampled_profile := profile.summary(args.profile, 1000)) is not None:
        out["profile"] = sampled_profile
    report.emit(out, args.out, "refresh-cpu")


if __name__ == "__main__":
    main()
