"""Server CPU per SignIn, counted and split: the hash's threads apart from the rest.

``python -m bench.signin_cpu [--calls 300] [--profile FILE] [--baseline DIR]``
starts ``authsvc serve --workers 1`` with the production argon2 profile
(``owasp``) and signs one user in ``--calls`` times from this process (a Python
gRPC client, ``--concurrency`` calls at a time). The worker's CPU time is read
from ``/proc`` before and after, per thread: the hashing threads (the ones
running at the hashing niceness, ``passwords.HASHING_NICENESS`` above the
loop's) apart from all others (the event loop, grpc's poller, the metrics
server). Then the same hash, verified by ``--threads`` threads in this process
for two seconds (``bench/raw.py``'s loop), gives the hash's own CPU per verify
(this process's CPU time over the loop, not wall time). What is ours per
sign-in is the worker's CPU per call minus that raw hash CPU: the rest of the
process plus whatever the hash costs more inside the server than alone.

``--baseline DIR`` (another checkout) measures a server of that checkout too,
rounds alternating with this one's, so both see the same machine. With
``--profile`` the worker is sampled by py-spy during a last round (``raw``
format; ``.json`` for speedscope; ``--gil``: only samples holding the GIL, which
attributes the event loop's CPU rather than its waits for the GIL). Prints one
JSON object; with ``--out`` writes it as ``signin-cpu-latest.json`` there.
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

from authsvc.domain.accounts.passwords import HASHING_NICENESS
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from . import profile, raw, report
from .seed import PASSWORD
from .service import (
    ROOT,
    Service,
    add_user,
    database_cpu_seconds,
    embedded_database,
    running,
)

EMAIL = "signin@example.com"
ENV = {"AUTHSVC_ACCESS_TOKEN_TTL": "7200", "AUTHSVC_ARGON2_PROFILE": "owasp",
       **{f"AUTHSVC_THROTTLE_{counter}_FREE": "1000000"
          for counter in ("IDENTIFIER", "ADDRESS", "PAIR", "REFRESH")}}
_TICKS = os.sysconf("SC_CLK_TCK")


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of ``pid``'s threads: the hashing threads (niced), the event
    loop's (the main thread; user and system apart) and all others (grpc's poller, the
    metrics server). Threads that ended are counted nowhere (the worker's live as long
    as it does)."""
    rows = []
    base = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        user, system, nice = int(fields[11]) / _TICKS, int(fields[12]) / _TICKS, int(fields[16])
        if int(task.name) == pid:
            base = nice
        rows.append((int(task.name), nice, user, system))
    out = dict.fromkeys(("hash", "loop_user", "loop_system", "other"), 0.0)
    for tid, nice, user, system in rows:
        if tid == pid:
            out["loop_user"] += user
            out["loop_system"] += system
        elif nice >= base + HASHING_NICENESS:
            out["hash"] += user + system
        else:
            out["other"] += user + system
    return out


RAW_SECONDS = 2.0  # the raw hash loop's length per round


def raw_verify_cpu(profile_name: str, threads: int) -> dict[str, float]:
    """``threads`` threads verifying the right password for ``RAW_SECONDS``
    (``raw.argon2_verify``): the CPU time each verify costs (mean), and the rate."""
    rate = raw.argon2_verify(profile_name, threads, RAW_SECONDS)
    return {"verifies": rate.calls, "threads": threads, "rate": round(rate.rate, 1),
            "cpu_ms_per_verify": round(1000 * rate.cpu_s / rate.calls, 3)}


async def sign_in_all(target: str, calls: int, concurrency: int) -> int:
    """``calls`` SignIns of the benchmark user; the calls that failed."""
    failed = 0
    left = calls
    request = auth_pb2.SignInRequest(email=EMAIL, password=PASSWORD)
    async with grpc.aio.insecure_channel(target) as channel:
        auth = auth_pb2_grpc.AuthStub(channel)

        async def lane() -> None:
            nonlocal failed, left
            while left > 0:
                left -= 1
                try:
                    await auth.SignIn(request)
                except grpc.aio.AioRpcError:
                    failed += 1

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return failed


def run(service: Service, calls: int, concurrency: int,
        profile_file: Path | None = None, gil: bool = False) -> dict[str, Any]:
    """One counted round of ``calls`` SignIns: the worker's CPU per call by thread,
    and the database's."""
    (worker,) = service.worker_pids() or [service.pid]
    with (profile.sampled(worker, profile_file, gil=gil, rate=250)
          if profile_file is not None else contextlib.nullcontext()):
        before, t0 = threads_cpu(worker), time.monotonic()
        db0 = database_cpu_seconds(service.data_dir)
        failed = asyncio.run(sign_in_all(service.target, calls, concurrency))
        seconds = time.monotonic() - t0
        after, db1 = threads_cpu(worker), database_cpu_seconds(service.data_dir)
    ms = {name: 1000 * (after[name] - before[name]) / calls for name in after}
    return {"calls": calls, "failed": failed, "seconds": round(seconds, 2),
            "rate": round(calls / seconds, 1),
            "cpu_ms_per_call": round(sum(ms.values()), 3),
            "hash_threads_ms_per_call": round(ms["hash"], 3),
            "other_threads_ms_per_call": round(sum(ms.values()) - ms["hash"], 3),
            **{f"{name}_ms_per_call": round(ms[name], 3)
               for name in ("loop_user", "loop_system", "other")},
            "database_ms_per_call": round(1000 * (db1 - db0) / calls, 3)}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.signin_cpu",
                                description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2, help="runs of --calls, each counted")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="the raw hash's threads (the server's default: one per core)")
    p.add_argument("--port", type=int, default=50681)
    p.add_argument("--profile", type=Path, default=None)
    p.add_argument("--gil", action="store_true",
                   help="profile only the samples holding the GIL (what runs Python, not "
                   "what waits for it; the hash threads' argon2 runs without it)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another checkout: its server is measured too, rounds alternating")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rounds = args.rounds + (1 if args.profile else 0)
    load_before = os.getloadavg()
    sources = {"this": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    raws: list[dict[str, float]] = []
    with embedded_database() as (data_dir, _url):
        add_user(data_dir, EMAIL, PASSWORD, ENV)
        for i in range(rounds):
            for name, source in sources.items():
                sampled = (args.profile if args.profile and i == rounds - 1 and name == "this"
                           else None)
                service = Service(data_dir, args.port, 1, ENV, source=source)
                with running(service):
                    asyncio.run(sign_in_all(service.target, 20, 4))  # warm
                    results[name].append(run(service, args.calls, args.concurrency, sampled,
                                              args.gil))
            if i < args.rounds:
                raws.append(raw_verify_cpu("owasp", args.threads))
    raw_ms = statistics.median(r["cpu_ms_per_verify"] for r in raws)
    out: dict[str, Any] = {"load_before": load_before, "load_after": os.getloadavg(),
                           "raw_argon2": {"rounds": raws, "cpu_ms_per_verify_median": raw_ms}}
    for name, rows in results.items():
        counted = rows[:args.rounds]
        median = statistics.median(r["cpu_ms_per_call"] for r in counted)
        out[name] = {"rounds": rows, "cpu_ms_per_call_median": median,
                     "hash_threads_ms_median": statistics.median(
                         r["hash_threads_ms_per_call"] for r in counted),
                     "other_threads_ms_median": statistics.median(
                         r["other_threads_ms_per_call"] for r in counted),
                     "database_ms_median": statistics.median(
                         r["database_ms_per_call"] for r in counted),
                     "beyond_raw_hash_ms": round(median - raw_ms, 3)}
    if (sampled_profile := profile.summary(args.profile, 250)) is not None:
        out["profile"] = sampled_profile
    report.emit(out, args.out, "signin-cpu")


if __name__ == "__main__":
    main()
