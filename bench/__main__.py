"""The authsvc benchmark: every scenario in one run.

One ghz setting for every gRPC scenario, one vegeta setting for every HTTP
case. First, start → first successful sign-in: ``authsvc serve`` on an existing
data directory whose embedded PostgreSQL is stopped (and, for comparison, on
the benchmark's own, whose PostgreSQL it holds), median of ``--starts``.
Then for each worker count (1 and all cores by default) it starts ``authsvc
serve`` with the production argon2 profile on an embedded PostgreSQL and
measures, in this order: the empty-RPC ceiling (health Check); Validate with
one hot token; Validate over 10,000 distinct tokens (first pass, then warm);
SignIn against raw argon2 verifies on the same cores; Refresh against a raw
one-transaction asyncpg loop on the same database; Validate latency at a fixed
rate alone and under SignIn load; and worker memory over many Validates.
With ``--http-workers`` workers (2 by default) a gateway with the watch
account starts beside the server, the memory (RSS and PSS) of every process
is read after ``--rest`` seconds idle, and after gRPC Validate come the HTTP
cases (``bench/http_cases.py``), then the memory again.
Results: a table on stdout (ending with the performance targets), JSON and a PNG
chart under ``bench/results/``.

Two deviations from the defaults, which cost nothing per call: access tokens
live two hours (``AUTHSVC_ACCESS_TOKEN_TTL=7200``) so that the tokens minted
at the start stay valid through a long run; and the sign-in tarpit's free
attempts are raised out of reach (``AUTHSVC_THROTTLE_*_FREE``), because every
sign-in here comes from one address for one user, 50 at a time, and each
reserves its throttle slot before hashing: with the defaults (5 per pair) all
but a few would be refused by design. The reservation statement still runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import (
    floor,
    footprint,
    gateway,
    ghz,
    http_cases,
    idle,
    importing,
    peers,
    profile,
    raw,
    report,
    seed,
    startup,
    vegeta,
)
from .seed import PASSWORD
from .service import (
    Service,
    add_user,
    database_cpu_seconds,
    embedded_database,
    process_cpu_seconds,
    running,
)

ENV = {"AUTHSVC_ACCESS_TOKEN_TTL": "7200", "AUTHSVC_ARGON2_PROFILE": "owasp",
       **{f"AUTHSVC_THROTTLE_{counter}_FREE": "1000000"
          for counter in ("IDENTIFIER", "ADDRESS", "PAIR")}}
CHEAP = {**ENV, "AUTHSVC_ARGON2_PROFILE": "test-only-cheapest"}
CHAINS = 20  # sessions refreshed in a row to make the distinct access tokens


def main() -> None:
    args = _parser().parse_args()
    if args.import_only:
        result = importing.measure(args.import_users or 1_000_000)
        importing.write(result, args.out)
        if not result["kill"]["ok"]:
            raise SystemExit("bench: the import killed mid-way failed a check (see kill.checks)")
        return
    if args.http_workers is None:
        args.http_workers = 2 if 2 in args.workers else max(args.workers)
    if args.http_workers not in args.workers:
        raise SystemExit("scripts/bench: --http-workers must be one of --workers")
    if args.http_concurrency is None:
        args.http_concurrency = args.concurrency
    if args.profile:
        profile.executable()  # fails now, not half-way through the run
    started = time.time()
    load_before = os.getloadavg()
    # held for the whole run: servers come and go
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-gw-") as tmp, \
            embedded_database() as (data_dir, url):
        binary = gateway.build(Path(tmp))
        watch_password = Path(tmp) / "watch-password"
        watch_password.write_text(PASSWORD)
        tokens = _seed(args, data_dir)
        asyncio.run(raw.prepare_table(url))
        starts = _starts(args, data_dir)
        idle_cost = None
        if args.idle_seconds > 0:
            idle_cost = idle.measure(data_dir, url, args.port + 20, args.http_workers,
                                     args.idle_seconds)
            print(f"  {args.http_workers}w idle: "
                  f"{idle_cost['transactions_per_worker_second']:.2f} transactions per "
                  f"worker per second over {idle_cost['seconds']:.0f} s", flush=True)
        phases = {}
        for i, workers in enumerate(args.workers):
            refresh_tokens = tokens["refresh"][i * args.refresh_calls:
                                               (i + 1) * args.refresh_calls]
            edge = ((binary, watch_password) if workers == args.http_workers else None)
            phases[str(workers)] = _phase(args, data_dir, url, workers, tokens["hot"],
                                          tokens["distinct"], refresh_tokens, edge)
        before_after = (_before_after(args, data_dir, tokens) if args.baseline else None)
        keycloak = (peers.keycloak_userinfo(vegeta.Client(
            args.http_concurrency, args.duration, args.warmup)) if args.peers else None)
    results = {
        "machine": _machine(load_before, os.getloadavg()),
        "settings": {**{k: (str(v) if isinstance(v, Path) else v)
                        for k, v in vars(args).items() if k != "out"},
                     "ghz": ghz.VERSION, "vegeta": vegeta.VERSION, "env": ENV},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "startup": starts,
        "idle": idle_cost,
        "phases": phases,
        "before_after": before_after,
        "peers": {"keycloak_userinfo": keycloak} if keycloak else None,
    }
    if args.import_users:
        results["import"] = importing.measure(args.import_users)
    report.write(results, args.out)


def _seed(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Users, then tokens from a seeding server with the cheap argon2 profile."""
    add_user(data_dir, "bench@example.com", PASSWORD, ENV)
    add_user(data_dir, "seed@example.com", PASSWORD, CHEAP)
    add_user(data_dir, gateway.WATCH_EMAIL, PASSWORD, ENV, gateway.WATCH_SCOPES)
    sessions_needed = (CHAINS + 1 + args.refresh_calls * len(args.workers)
                       + (BEFORE_AFTER_ROUNDS * 2 * (_baseline_refreshes(args) + REFRESH_WARMUP)
                          if args.baseline else 0))
    t0 = time.monotonic()
    with running(Service(data_dir, args.port, 1, CHEAP)) as service:
        sessions = asyncio.run(seed.sign_in(service.target, "seed@example.com", PASSWORD,
                                            sessions_needed))
        distinct, _ = asyncio.run(seed.refresh_chains(
            service.target, sessions[:CHAINS], -(-args.distinct // CHAINS)))
    print(f"seeded {sessions_needed} sessions and {len(distinct)} access tokens "
          f"in {time.monotonic() - t0:.0f} s", flush=True)
    refresh = [s.refresh_token for s in sessions[CHAINS + 1:]]
    phases_need = args.refresh_calls * len(args.workers)
    return {"hot": sessions[CHAINS].access_token, "distinct": distinct[:args.distinct],
            "refresh": refresh[:phases_need], "before_after_refresh": refresh[phases_need:]}


def _starts(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Start → first successful sign-in, with the data directory's PostgreSQL
    stopped (``cold``) and held by the benchmark (``warm``)."""
    port, workers = args.port + 10, args.http_workers
    restart_dir = startup.prepare(port, ENV, PASSWORD)
    try:
        cold = startup.measure(restart_dir, port, workers, ENV, startup.EMAIL, PASSWORD,
                               args.starts, cold=True)
    finally:
        shutil.rmtree(restart_dir, ignore_errors=True)
    warm = startup.measure(data_dir, port, workers, ENV, "bench@example.com", PASSWORD,
                           args.starts, cold=False)
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"  {workers}w start -> first sign-in, {name} database: median "
              f"{r['median']:.2f} s of {r['seconds']}", flush=True)
    return {"cold": cold, "warm": warm}


def _phase(args: argparse.Namespace, data_dir: Path, url: str, workers: int, hot: str,
           distinct: list[str], refresh_tokens: list[str],
           edge: tuple[Path, Path] | None) -> dict[str, Any]:
    """The scenarios against ``workers`` workers; with ``edge`` (the gateway
    binary and the watch account's password file) also the process memory (idle,
    after the HTTP cases and after the whole phase), the HTTP cases, and with
    ``--profile`` where one worker's time goes during SignIn and Refresh."""
    client = ghz.Client(args.concurrency, args.connections)
    service = Service(data_dir, args.port, workers, ENV, uvloop=args.uvloop)
    out: dict[str, Any] = {"workers": workers}
    hot_data = {"access_token": hot}
    distinct_data = ghz.sequence(distinct, "access_token")
    sign_in_data = {"email": "bench@example.com", "password": PASSWORD}
    with running(service), contextlib.ExitStack() as http, \
            tempfile.TemporaryDirectory(prefix="authsvc-bench-spy-") as spy_dir:
        target, cpu = service.target, service.cpu_seconds
        gateways = None
        profiles: dict[str, dict[str, float]] = {}

        @contextlib.contextmanager
        def sampled(name: str) -> Iterator[None]:
            """py-spy on the first worker while the block runs (``--profile``, the
            HTTP phase), its shares kept under ``name``."""
            if not (args.profile and edge):
                yield
                return
            raw_file = Path(spy_dir) / f"{name}.txt"
            with profile.sampled(service.worker_pids()[0], raw_file):
                yield
            profiles[name] = profile.shares(raw_file)

        def snapshot(name: str) -> None:
            assert gateways is not None
            out[name] = footprint.snapshot(service, *gateways.pids())
            print(f"  {workers}w {name}: RSS {out[name]['rss_kib'] / 1024:.1f} MiB, PSS "
                  f"{out[name]['pss_kib'] / 1024:.1f} MiB", flush=True)

        if edge:
            gateways = http.enter_context(contextlib.closing(http_cases.Gateways(
                edge[0], service, edge[1], int(ENV["AUTHSVC_ACCESS_TOKEN_TTL"]))))
            time.sleep(args.rest)
            snapshot("processes_idle")
        out["memory_start"] = [_mem(m) for m in service.memory()]

        def counted(name: str, run: Callable[[], ghz.Result]) -> ghz.Result:
            """``run``'s result under ``name``, with PostgreSQL's CPU meanwhile."""
            database = database_cpu_seconds(data_dir)
            with sampled(name):
                result = run()
            _log(workers, name, result)
            out[name] = {**result.as_dict(),
                         "database_cpu_s": round(database_cpu_seconds(data_dir) - database, 3)}
            return result

        def measure(name: str, call: str, data: Any, **kwargs: Any) -> ghz.Result:
            ghz.run(client, target, call, data, duration=args.warmup)
            return counted(name, lambda: ghz.run(client, target, call, data,
                                                 duration=args.duration, cpu=cpu, **kwargs))

        measure("health", ghz.HEALTH, {})
        if workers == 1:  # the same empty RPC on grpc.aio alone
            with floor.running(args.port + 50) as bare:
                bare_target = f"127.0.0.1:{args.port + 50}"
                ghz.run(client, bare_target, ghz.HEALTH, {}, duration=args.warmup)
                result = ghz.run(client, bare_target, ghz.HEALTH, {}, duration=args.duration,
                                 cpu=lambda: process_cpu_seconds(bare.pid))
            _log(workers, "bare_grpc_health", result)
            out["bare_grpc_health"] = result.as_dict()
        measure("validate_hot", ghz.VALIDATE, hot_data)
        if gateways:
            out["http"] = gateways.cases(
                vegeta.Client(args.http_concurrency, args.duration, args.warmup), hot,
                sign_in_data)
            snapshot("processes_after_load")
        cold = ghz.run(client, target, ghz.VALIDATE, distinct_data, total=len(distinct),
                       cpu=cpu)
        _log(workers, "validate_distinct_first_pass", cold)
        out["validate_distinct_first_pass"] = cold.as_dict()
        measure("validate_distinct", ghz.VALIDATE, distinct_data)
        measure("sign_in", ghz.SIGN_IN, sign_in_data)
        argon = raw.argon2_verify("owasp", os.cpu_count() or 1, args.duration)
        out["raw_argon2"] = {"calls": argon.calls, "seconds": argon.seconds,
                             "rate": argon.rate, "cpu_s": argon.cpu_s,
                             "threads": os.cpu_count()}
        print(f"  {workers}w raw_argon2: {argon.rate:,.1f}/s", flush=True)
        counted("refresh", lambda: ghz.run(client, target, ghz.REFRESH,
                                           ghz.sequence(refresh_tokens, "refresh_token"),
                                           total=len(refresh_tokens), cpu=cpu))
        tx = raw.transactions(url, workers, 10, client.concurrency, args.duration)
        out["raw_transaction"] = {"calls": tx.calls, "seconds": tx.seconds, "rate": tx.rate,
                                  "processes": workers, "pool_size": 10}
        print(f"  {workers}w raw_transaction: {tx.rate:,.1f}/s", flush=True)
        measure("validate_paced", ghz.VALIDATE, hot_data, rps=args.paced_rps)
        load = ghz.Run(client, target, ghz.SIGN_IN, sign_in_data,
                       duration=args.duration + 2 * args.warmup)
        time.sleep(args.warmup)
        paced = ghz.run(client, target, ghz.VALIDATE, hot_data, duration=args.duration,
                        rps=args.paced_rps)
        background = load.wait()
        _log(workers, "validate_paced_under_sign_in", paced)
        out["validate_paced_under_sign_in"] = paced.as_dict()
        out["sign_in_background"] = background.as_dict()
        out["memory"] = _memory_run(args, client, service, distinct_data)
        out["memory_end"] = [_mem(m) for m in service.memory()]
        if gateways:
            snapshot("processes_after_bench")
        if profiles:
            out["profiles"] = profiles
    return out


BEFORE_AFTER_ROUNDS = 3  # rounds of each side, alternating, which goes first too
REFRESH_WARMUP = 200  # refresh tokens spent unmeasured before each counted round


def _baseline_refreshes(args: argparse.Namespace) -> int:
    """Refresh calls per round of the before/after comparison."""
    return max(1, int(args.refresh_calls) // 2)


def _before_after(args: argparse.Namespace, data_dir: Path,
                  tokens: dict[str, Any]) -> dict[str, Any]:
    """The hot paths (Validate of one token, SignIn, Refresh) of this checkout and of
    ``--baseline`` (another checkout), each served by its own ``authsvc serve`` with
    ``--http-workers`` workers on the same database, both up, measured in alternating
    rounds so both see the same machine: per side and scenario, each round's rate and
    server CPU per call. The rounds alternate which side goes first; each Refresh round
    spends ``REFRESH_WARMUP`` tokens unmeasured first (the other scenarios warm up for
    ``--warmup`` seconds)."""
    client = ghz.Client(args.concurrency, args.connections)
    workers = args.http_workers
    sides = {"this": Service(data_dir, args.port + 30, workers, ENV),
             "baseline": Service(data_dir, args.port + 40, workers, ENV,
                                 source=args.baseline)}
    refresh_tokens = iter(tokens["before_after_refresh"])
    per_round = _baseline_refreshes(args)
    out: dict[str, Any] = {"baseline": str(args.baseline),
                           "commit": _git("rev-parse", "--short", "HEAD", cwd=args.baseline),
                           "workers": workers, "rounds": BEFORE_AFTER_ROUNDS,
                           "scenarios": {}}
    with running(sides["this"]), running(sides["baseline"]):
        for name, call, data in (
                ("validate_hot", ghz.VALIDATE, {"access_token": tokens["hot"]}),
                ("sign_in", ghz.SIGN_IN, {"email": "bench@example.com",
                                          "password": PASSWORD}),
                ("refresh", ghz.REFRESH, None)):
            runs: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
            for i in range(BEFORE_AFTER_ROUNDS):
                order = list(sides.items())
                for side, service in order if i % 2 == 0 else reversed(order):
                    if data is None:
                        warm = [next(refresh_tokens) for _ in range(REFRESH_WARMUP)]
                        ghz.run(client, service.target, call, ghz.sequence(warm, "refresh_token"),
                                total=REFRESH_WARMUP)
                        chunk = [next(refresh_tokens) for _ in range(per_round)]
                        result = ghz.run(client, service.target, call,
                                         ghz.sequence(chunk, "refresh_token"),
                                         total=per_round, cpu=service.cpu_seconds)
                    else:
                        ghz.run(client, service.target, call, data, duration=args.warmup)
                        result = ghz.run(client, service.target, call, data,
                                         duration=args.duration, cpu=service.cpu_seconds)
                    runs[side].append({
                        "rate": result.rate, "errors": result.errors,
                        "cpu_ms_per_call": 1000 * result.server_cpu_s / max(1, result.calls)})
                    _log(workers, f"{name} ({side})", result)
            out["scenarios"][name] = runs
    return out


def _memory_run(args: argparse.Namespace, client: ghz.Client, service: Service,
                data: list[dict[str, str]]) -> dict[str, Any]:
    """RSS of each worker before and after ``--rss-calls`` Validates over the
    distinct tokens, sampled every ``chunk`` calls."""
    chunk = min(100_000, args.rss_calls)
    samples = [{"calls": 0, "workers": [_mem(m) for m in service.memory()]}]
    t0, done, errors = time.monotonic(), 0, 0
    while done < args.rss_calls:
        n = min(chunk, args.rss_calls - done)
        result = ghz.run(client, service.target, ghz.VALIDATE, data, total=n)
        done += n
        errors += result.errors
        samples.append({"calls": done, "workers": [_mem(m) for m in service.memory()]})
    seconds = time.monotonic() - t0
    print(f"  {service.workers}w memory: {done:,} Validates in {seconds:.0f} s, "
          f"{errors} errors", flush=True)
    return {"calls": done, "seconds": seconds, "errors": errors, "samples": samples}


def _mem(m: Any) -> dict[str, int]:
    return {"rss_kib": m.rss_kib, "hwm_kib": m.hwm_kib}


def _log(workers: int, name: str, r: ghz.Result) -> None:
    print(f"  {workers}w {name}: {r.rate:,.0f}/s p50 {r.p50_ms:.1f} ms p99 {r.p99_ms:.1f} ms"
          f" ({r.errors} errors of {r.calls})", flush=True)


def _machine(load_before: tuple[float, ...], load_after: tuple[float, ...]) -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "commit": _git("rev-parse", "--short", "HEAD"),
            "uncommitted": _git("status", "--porcelain", "--untracked-files=no").splitlines(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in load_after]}


def _git(*args: str, cwd: Path = Path(__file__).parent) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                          cwd=cwd)
    return done.stdout.strip()


def _parser() -> argparse.ArgumentParser:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")],
                   default=sorted({1, cores}), help="worker counts, comma-separated "
                   f"(default 1,{cores})")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each")
    p.add_argument("--concurrency", type=int, default=50, help="ghz -c for every scenario")
    p.add_argument("--connections", type=int, default=10, help="ghz --connections")
    p.add_argument("--distinct", type=int, default=10_000, help="distinct access tokens")
    p.add_argument("--refresh-calls", type=int, default=5_000,
                   help="Refresh calls per worker count (each spends one fresh token)")
    p.add_argument("--paced-rps", type=int, default=200,
                   help="Validate rate for the latency-under-load scenario")
    p.add_argument("--rss-calls", type=int, default=1_000_000,
                   help="Validates between the two RSS readings")
    p.add_argument("--http-workers", type=int, default=None,
                   help="the worker count (one of --workers) whose phase also measures the "
                   "HTTP cases and every process's memory, and of the start-up measure "
                   "(default 2 if in --workers, else the most)")
    p.add_argument("--http-concurrency", type=int, default=None,
                   help="vegeta -max-workers for every HTTP case (default: --concurrency)")
    p.add_argument("--rest", type=float, default=5.0,
                   help="seconds of rest after start-up before the idle memory reading")
    p.add_argument("--starts", type=int, default=5,
                   help="starts for start -> first sign-in (median)")
    p.add_argument("--import-users", type=int, default=0,
                   help="also import this many synthetic users with `authsvc users import` "
                   "and compare with a plain COPY (bench/importing.py; 0: leave it out)")
    p.add_argument("--import-only", action="store_true",
                   help="run only the import benchmark (--import-users, default 1000000)")
    p.add_argument("--idle-seconds", type=float, default=32.0,
                   help="seconds of the idle-cost measure (database transactions, CPU and "
                   "memory of a serve nobody calls, bench/idle.py); 0 leaves it out")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another checkout (e.g. `git worktree add /tmp/base main`): its "
                   "Validate, SignIn and Refresh are measured against this checkout's in "
                   "alternating rounds, rate and server CPU per call")
    p.add_argument("--peers", action="store_true",
                   help="also measure Keycloak's userinfo with the HTTP cases' vegeta "
                   "settings (bench/peers.py; needs Java 21+ and mvn)")
    p.add_argument("--profile", action="store_true",
                   help="sample one worker with py-spy during SignIn and Refresh of the "
                   "--http-workers phase, and report where its time goes (bench/profile.py)")
    p.add_argument("--port", type=int, default=50551)
    p.add_argument("--uvloop", action="store_true",
                   help="run the worker on uvloop (with --workers 1 only)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return p


if __name__ == "__main__":
    main()
