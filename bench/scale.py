"""Does authsvc stay as fast at 10 million sessions? And how big does it get?

``python -m bench.scale`` (or ``scripts/bench --scale``) makes two databases on
one embedded PostgreSQL: *empty* (1,000 users) and *large* (1 million users and
10 million sessions, seeded with ``generate_series`` in a few minutes: a tenth
of the sessions revoked, a tenth past their absolute lifetime, the rest live).
Against each in turn, interleaved over rounds (after a warm-up round that is not
counted: a database in service has its hot pages cached, a freshly seeded one
does not), one ``authsvc serve`` (2 workers) answers a Python gRPC load
generator (another process) for a fixed time:

- SignIn of random users (cheap argon2 profile, so the database's share of the
  work is what is measured, not the hash);
- Refresh of signed-in sessions, each token spent once;
- Validate with the database fallback (``AUTHSVC_REVOCATION_MAX_STALENESS=0``,
  so every call asks PostgreSQL whether the session is revoked).

Then a day of refreshes on the large database — every one of a sample of
sessions refreshed 96 times, as one refresh per 15 minutes makes — with table
and index sizes before and after. Nothing here is judged by time (no
expiry is reached), so the day's clock is not simulated, only its refreshes.
Output: the rates, their large ÷ empty ratios, the sizes, and a projection
(bytes per active session, rows per day, PostgreSQL size for 10 M users), on
stdout and as JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import argon2
import asyncpg
import grpc

from authsvc.domain.accounts.passwords import PROFILES
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from .seed import PASSWORD
from .service import Service, embedded_database, running

PROFILE = "test-only-cheapest"
KEK = base64.urlsafe_b64encode(b"authsvc scale benchmark key 32b!").decode()
SERVE_ENV = {
    "AUTHSVC_ARGON2_PROFILE": PROFILE, "AUTHSVC_KEY_ENCRYPTION_KEY": KEK,
    "AUTHSVC_ACCESS_TOKEN_TTL": "7200", "AUTHSVC_REVOCATION_MAX_STALENESS": "0",
    "AUTHSVC_THROTTLE_IDENTIFIER_FREE": "1000000", "AUTHSVC_THROTTLE_ADDRESS_FREE": "1000000",
    "AUTHSVC_THROTTLE_PAIR_FREE": "1000000",
}
SCENARIOS = ("signin", "refresh", "validate")
TABLES = ("users", "sessions", "auth_events", "refresh_tokens", "throttles")


def main() -> None:
    args = _parser().parse_args()
    started, load_before = time.time(), os.getloadavg()
    with embedded_database() as (data_dir, admin_url):
        urls = {name: asyncio.run(_create(admin_url, f"scale_{name}")) for name in
                ("empty", "large")}
        t0 = time.monotonic()
        asyncio.run(_seed(urls["empty"], args.empty_users, 0))
        asyncio.run(_seed(urls["large"], args.users, args.sessions))
        seeded = time.monotonic() - t0
        print(f"seeded in {seeded:.0f} s", flush=True)
        rates: dict[str, dict[str, list[float]]] = {n: {s: [] for s in SCENARIOS}
                                                    for n in urls}
        users = {"empty": args.empty_users, "large": args.users}
        for round_ in range(-args.warmup_rounds, args.rounds):
            for name in (("empty", "large") if round_ % 2 == 0 else ("large", "empty")):
                with running(Service(data_dir, args.port, 2, {
                        **SERVE_ENV, "AUTHSVC_DATABASE_URL": urls[name]})) as service:
                    for scenario, rate in _measure(service.target, users[name], args).items():
                        if round_ >= 0:  # warm-up rounds are not counted
                            rates[name][scenario].append(rate)
                        label = "warm-up" if round_ < 0 else f"round {round_ + 1}"
                        print(f"{label} {name:5} {scenario:8} {rate:8.1f}/s", flush=True)
        with running(Service(data_dir, args.port, 2, {
                **SERVE_ENV, "AUTHSVC_DATABASE_URL": urls["large"]})) as service:
            day = asyncio.run(_day(service.target, urls["large"], args))
    results = _results(args, rates, day, seeded, started, load_before)
    _report(results, args.out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=10_000_000)
    parser.add_argument("--empty-users", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-rounds", type=int, default=1,
                        help="rounds run first and not counted: a database in service is"
                             " warm, and a freshly seeded one is not")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--day-sessions", type=int, default=200,
                        help="sessions refreshed 96 times for the day of refreshes")
    parser.add_argument("--port", type=int, default=50291)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser


async def _create(admin_url: str, name: str) -> str:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    head, _, query = admin_url.partition("?")
    url = f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    from authsvc.store.database import migrate
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


async def _seed(url: str, users: int, sessions: int) -> None:
    """``users`` users (user<i>@example.com, one shared password hash) and ``sessions``
    sessions spread over them, in a few set-based statements. Ids ascend (session ids
    are UUIDv7 in authsvc too), so the primary keys are built at their right edge."""
    stored = argon2.PasswordHasher.from_parameters(PROFILES[PROFILE]).hash(PASSWORD)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
            " SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,"
            "        'user' || i || '@example.com', $1, now(), now()"
            "   FROM generate_series(1, $2::int) AS i", stored, users)
        if sessions:
            # Secondary indexes are built once after the load (much faster than
            # maintaining them row by row), then the table is analysed.
            await conn.execute("DROP INDEX sessions_user_id, sessions_revoked_at,"
                               " sessions_expires_at")
            step = 1_000_000
            for first in range(1, sessions + 1, step):
                await conn.execute(
                    "INSERT INTO sessions (id, user_id, scopes, created_at, expires_at,"
                    " last_used_at, revoked_at, refresh_counter, refresh_moved_at)"
                    " SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,"
                    "        ('00000000-0000-4000-8000-'"
                    "         || lpad(to_hex(1 + i % $3), 12, '0'))::uuid,"
                    "        '{}',"
                    "        now() - interval '20 days',"
                    "        CASE WHEN i % 10 = 1 THEN now() - interval '1 day'"
                    "             ELSE now() + interval '10 days' END,"
                    "        now() - interval '1 hour',"
                    "        CASE WHEN i % 10 = 2 THEN now() - interval '2 days' END,"
                    "        i % 500, now() - interval '1 hour'"
                    "   FROM generate_series($1::int, $2::int) AS i",
                    first, min(first + step - 1, sessions), users)
                print(f"  sessions: {min(first + step - 1, sessions):,}", flush=True)
            await conn.execute(
                "CREATE INDEX sessions_user_id ON sessions (user_id);"
                " CREATE INDEX sessions_revoked_at ON sessions (revoked_at)"
                "  WHERE revoked_at IS NOT NULL;"
                " CREATE INDEX sessions_expires_at ON sessions (expires_at)")
        await conn.execute("VACUUM ANALYZE users")
        await conn.execute("VACUUM ANALYZE sessions")
        # Write the load out now, not in a checkpoint during the first measurements.
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def _measure(target: str, users: int, args: argparse.Namespace) -> dict[str, float]:
    """Each scenario's calls per second, from a load generator in its own process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return dict(pool.apply(_load, (target, users, args.concurrency, args.duration)))


def _load(target: str, users: int, concurrency: int, duration: float) -> dict[str, float]:
    return asyncio.run(_load_async(target, users, concurrency, duration))


async def _load_async(target: str, users: int, concurrency: int, duration: float,
                      ) -> dict[str, float]:
    async with grpc.aio.insecure_channel(target) as channel:
        auth = auth_pb2_grpc.AuthStub(channel)

        async def sign_in() -> auth_pb2.SignInResponse:
            email = f"user{random.randint(1, users)}@example.com"  # noqa: S311
            return await auth.SignIn(auth_pb2.SignInRequest(email=email, password=PASSWORD))

        signed_in = await asyncio.gather(*(sign_in() for _ in range(concurrency)))
        tokens = [s.refresh_token for s in signed_in]
        access = [s.access_token for s in signed_in]

        async def refresh(i: int) -> None:
            reply = await auth.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens[i]))
            tokens[i] = reply.refresh_token

        async def validate(i: int) -> None:
            await auth.Validate(auth_pb2.ValidateRequest(access_token=access[i]))

        async def signin_call(_i: int) -> None:
            await sign_in()

        rates = {}
        for name, call in (("signin", signin_call), ("refresh", refresh),
                           ("validate", validate)):
            rates[name] = await _rate(call, concurrency, duration)
        return rates


async def _rate(call: Any, concurrency: int, duration: float) -> float:
    """Calls per second of ``concurrency`` loops, after a one-second warm-up."""
    counts = [0] * concurrency
    measuring = False

    async def loop(i: int, until: float) -> None:
        while time.monotonic() < until:
            await call(i)
            if measuring:
                counts[i] += 1

    warm = time.monotonic() + 1
    await asyncio.gather(*(loop(i, warm) for i in range(concurrency)))
    measuring = True
    start = time.monotonic()
    await asyncio.gather(*(loop(i, start + duration) for i in range(concurrency)))
    return sum(counts) / (time.monotonic() - start)


async def _sizes(url: str) -> dict[str, dict[str, int]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        found = {}
        for table in TABLES:
            row = await conn.fetchrow(
                "SELECT pg_relation_size($1::regclass) AS heap,"
                " pg_indexes_size($1::regclass) AS indexes,"
                " pg_total_relation_size($1::regclass) AS total", table)
            rows = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
            found[table] = {**dict(row), "rows": rows}
        return found
    finally:
        await conn.close()


async def _day(target: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """A sample of sessions refreshed 96 times each; sizes before and after."""
    before = await _sizes(url)
    async with grpc.aio.insecure_channel(target) as channel:
        auth = auth_pb2_grpc.AuthStub(channel)
        semaphore = asyncio.Semaphore(args.concurrency)

        async def session(i: int) -> None:
            async with semaphore:
                reply = await auth.SignIn(auth_pb2.SignInRequest(
                    email=f"user{1 + i}@example.com", password=PASSWORD))
                token = reply.refresh_token
                for _ in range(96):
                    token = (await auth.Refresh(
                        auth_pb2.RefreshRequest(refresh_token=token))).refresh_token

        t0 = time.monotonic()
        await asyncio.gather(*(session(i) for i in range(args.day_sessions)))
        took = time.monotonic() - t0
    return {"sessions": args.day_sessions, "refreshes": args.day_sessions * 96,
            "seconds": round(took, 1), "before": before, "after": await _sizes(url)}


def _results(args: argparse.Namespace, rates: dict[str, dict[str, list[float]]],
             day: dict[str, Any], seeded: float, started: float,
             load_before: tuple[float, float, float]) -> dict[str, Any]:
    medians = {n: {s: statistics.median(r) for s, r in by.items()} for n, by in rates.items()}
    ratios = {s: medians["large"][s] / medians["empty"][s] for s in SCENARIOS}
    before, after = day["before"], day["after"]
    sessions = before["sessions"]
    per_session = sessions["total"] / max(1, sessions["rows"])
    events_grew = after["auth_events"]["rows"] - before["auth_events"]["rows"]
    per_event = (after["auth_events"]["total"] - before["auth_events"]["total"]) / max(
        1, events_grew)
    refreshes_per_day = 96
    projection = {
        "bytes_per_session": round(per_session),
        "bytes_per_audit_row": round(per_event),
        "sessions_table_growth_per_refresh_bytes": round(
            (after["sessions"]["total"] - before["sessions"]["total"]) / day["refreshes"]),
        "rows_per_day_per_million_active_sessions": {
            "sessions": 0, "refresh_tokens": 0,
            "auth_events": refreshes_per_day * 1_000_000},
        "gib_for_10m_users_one_session_each": round(
            (10_000_000 * per_session + 10_000_000 * before["users"]["total"]
             / max(1, before["users"]["rows"])) / 2**30, 2),
        "audit_gib_per_day_per_million_active_sessions": round(
            refreshes_per_day * 1_000_000 * per_event / 2**30, 2),
    }
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1), "seed_seconds": round(seeded, 1),
        "load": {"before": load_before, "after": os.getloadavg()},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "rates": rates, "medians": medians, "ratios": ratios, "day": day,
        "projection": projection,
    }


def _report(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    text = json.dumps(results, indent=2, default=str)
    (out / f"scale-{stamp}.json").write_text(text)
    (out / "scale-latest.json").write_text(text)
    m, r = results["medians"], results["ratios"]
    print("\nscenario   empty/s   large/s   large÷empty")
    for s in SCENARIOS:
        print(f"{s:9} {m['empty'][s]:9.1f} {m['large'][s]:9.1f} {r[s]:10.2f}")
    print(json.dumps({"projection": results["projection"], "load": results["load"]},
                     indent=2))


if __name__ == "__main__":
    main()
