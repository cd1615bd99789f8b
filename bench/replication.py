"""The cost of a synchronous standby (a measurement, not a test; numbers go in
the README, "Several replicas, outages").

A real PostgreSQL primary and a streaming standby (``tests/system/replication.py``:
the pgserver wheel's initdb, pg_basebackup and pg_ctl, ``fsync = on``), authsvc
(its own process, one worker) on the multi-host URL with
``target_session_attrs=read-write``, and in alternating rounds:

- ``async``: the standby streams asynchronously (``synchronous_standby_names = ''``):
  a commit waits for the primary's own WAL flush only;
- ``sync``: the same standby is synchronous (``synchronous_standby_names = '*'``,
  ``synchronous_commit = on``): a commit also waits until the standby has flushed
  it, which is what makes an OK from Revoke survive a failover.

Each round measures Refresh (``--concurrency`` clients, each refreshing its own
session in a row) and Revoke (the same clients revoking pre-made sessions) for
``--seconds`` each: calls/s and median/p99 latency; and, for the database alone,
one connection committing one-row transactions back to back. The mode is switched with
ALTER SYSTEM and a reload, on the same servers and data.

Usage: scripts/bench-replication [--seconds 8] [--concurrency 16] [--rounds 2]
(or ``python -m bench.replication`` from the repository root).

The load generator is Python (grpc.aio) in this process, on the same cores as
authsvc and both PostgreSQL servers: compare the two modes' ratio, not the
absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import grpc
from argon2 import PasswordHasher, profiles

from authsvc.v1 import auth_pb2, auth_pb2_grpc
from tests.servers import AuthsvcProcess, free_port, new_key, server_env
from tests.system.replication import Cluster, init_template, make_root, streaming

PASSWORD = "correct horse battery staple"  # noqa: S105 (the benchmark users')
MODES = {"async": "", "sync": "*"}


@dataclass(frozen=True, slots=True)
class Result:
    calls: int  # answered OK
    seconds: float
    latencies: list[float]  # of the OK answers
    failed: int = 0  # answered anything else (UNAVAILABLE: the database timeout)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def quantile(self, q: float) -> float:
        return statistics.quantiles(self.latencies, n=100)[int(q * 100) - 1] * 1000


def main() -> None:
    args = _parser().parse_args()
    root = make_root("authsvc-bench-replication-")
    try:
        template = init_template(root, fsync=True)
        made = Cluster(root, template, synchronous=False)
        try:
            results = asyncio.run(_measure(args, made))
        finally:
            made.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _report(args, results)


async def _measure(args: argparse.Namespace, cluster: Cluster,
                   ) -> dict[str, dict[str, list[Result]]]:
    await _switch(cluster, "async")
    env = server_env(AUTHSVC_DATABASE_URL=cluster.url(), AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_ARGON2_PROFILE="test-only-cheapest",
                     AUTHSVC_THROTTLE_PAIR_FREE="100000",
                     AUTHSVC_THROTTLE_IDENTIFIER_FREE="100000",
                     AUTHSVC_METRICS_LISTEN="off")
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    results: dict[str, dict[str, list[Result]]] = {
        m: {"refresh": [], "revoke": [], "commit": []} for m in MODES}
    try:
        await asyncio.to_thread(lambda: server.start().wait_ready())
        await _add_users(cluster.primary.url(), args.concurrency)
        async with grpc.aio.insecure_channel(server.address) as channel:
            auth = auth_pb2_grpc.AuthStub(channel)
            for round_ in range(args.rounds):
                for mode in MODES:
                    await _switch(cluster, mode)
                    chains = await _sign_in(auth, args.concurrency, 1)
                    results[mode]["refresh"].append(
                        await _refreshes(auth, chains, args.seconds))
                    # More sessions than a round can revoke: the rate decides how many.
                    sessions = await _sign_in(auth, args.concurrency, args.revoke_sessions)
                    results[mode]["revoke"].append(await _revokes(auth, sessions, args.seconds))
                    results[mode]["commit"].append(
                        await _commits(cluster.primary.url(), args.seconds / 2))
                    print(f"round {round_ + 1} {mode}: refresh "
                          f"{results[mode]['refresh'][-1].rate:.0f}/s, revoke "
                          f"{results[mode]['revoke'][-1].rate:.0f}/s "
                          f"({results[mode]['revoke'][-1].failed} failed), one commit "
                          f"{results[mode]['commit'][-1].quantile(0.5):.2f} ms", flush=True)
    finally:
        await asyncio.to_thread(server.stop)
    return results


async def _switch(cluster: Cluster, mode: str) -> None:
    conn = await asyncpg.connect(cluster.primary.url())
    try:
        await conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{MODES[mode]}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    # Then wait until the standby has caught up: the first synchronous commits
    # would otherwise wait for all the WAL it lags behind.
    deadline = time.monotonic() + 120
    while not (await streaming(cluster.primary.url(), synchronous=mode == "sync")
               and await _caught_up(cluster.primary.url())):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the standby did not become {mode}")
        await asyncio.sleep(0.1)


async def _caught_up(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval(
            "SELECT coalesce(bool_and(flush_lsn >= pg_current_wal_lsn()), false)"
            " FROM pg_stat_replication"))
    finally:
        await conn.close()


async def _add_users(url: str, count: int) -> None:
    stored = PasswordHasher.from_parameters(profiles.CHEAPEST).hash(PASSWORD)
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
            " VALUES (gen_random_uuid(), $1, $2, now(), now())",
            [(f"bench{i}@example.com", stored) for i in range(count)])
    finally:
        await conn.close()


async def _sign_in(auth: auth_pb2_grpc.AuthStub, users: int, each: int) -> list[list[str]]:
    """``each`` sessions of every user: per user, its refresh tokens."""
    async def one(i: int) -> list[str]:
        tokens = []
        while len(tokens) < each:
            try:
                reply = await auth.SignIn(auth_pb2.SignInRequest(
                    email=f"bench{i}@example.com", password=PASSWORD), timeout=30)
            except grpc.RpcError as exc:  # UNAVAILABLE: the database timeout; again
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                continue
            tokens.append(reply.refresh_token)
        return tokens

    return await asyncio.gather(*(one(i) for i in range(users)))


Client = Callable[[float, list[float]], Awaitable[int]]  # (until, latencies) -> failures


async def _timed(clients: list[Client], seconds: float) -> Result:
    start = time.monotonic()
    latencies: list[float] = []
    failed = await asyncio.gather(*(client(start + seconds, latencies) for client in clients))
    return Result(len(latencies), time.monotonic() - start, latencies, sum(failed))


async def _refreshes(auth: auth_pb2_grpc.AuthStub, chains: list[list[str]],
                     seconds: float) -> Result:
    def client(token: str) -> Client:
        async def run(until: float, latencies: list[float]) -> int:
            nonlocal token
            failed = 0
            while time.monotonic() < until:
                started = time.monotonic()
                try:
                    reply = await auth.Refresh(
                        auth_pb2.RefreshRequest(refresh_token=token), timeout=30)
                except grpc.RpcError:
                    failed += 1  # retried with the same token: the grace covers it
                    continue
                latencies.append(time.monotonic() - started)
                token = reply.refresh_token
            return failed
        return run

    return await _timed([client(tokens[0]) for tokens in chains], seconds)


async def _revokes(auth: auth_pb2_grpc.AuthStub, sessions: list[list[str]],
                   seconds: float) -> Result:
    def client(tokens: list[str]) -> Client:
        async def run(until: float, latencies: list[float]) -> int:
            failed = 0
            for token in tokens:
                if time.monotonic() >= until:
                    break
                started = time.monotonic()
                try:
                    await auth.Revoke(auth_pb2.RevokeRequest(token=token), timeout=30)
                except grpc.RpcError:
                    failed += 1
                    continue
                latencies.append(time.monotonic() - started)
            return failed
        return run

    result = await _timed([client(tokens) for tokens in sessions], seconds)
    if result.seconds < seconds * 0.99:
        print("  (revoke ran out of sessions: raise --revoke-sessions)", flush=True)
    return result


async def _commits(url: str, seconds: float) -> Result:
    """One connection committing one-row transactions back to back: the time a
    commit takes, without authsvc or the client in the way."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commits (n bigint)")
        latencies = []
        start = time.monotonic()
        while time.monotonic() < start + seconds:
            began = time.monotonic()
            await conn.execute("INSERT INTO bench_commits VALUES (1)")
            latencies.append(time.monotonic() - began)
        return Result(len(latencies), time.monotonic() - start, latencies)
    finally:
        await conn.close()


def _report(args: argparse.Namespace, results: dict[str, dict[str, list[Result]]]) -> None:
    print(f"\n{args.concurrency} clients, {args.seconds:g} s per measurement, "
          f"{args.rounds} rounds alternating; load average now "
          f"{os.getloadavg()[0]:.1f}")
    print("| call | async standby | sync standby | sync / async |")
    print("|---|---|---|---|")
    for kind in ("refresh", "revoke", "commit"):
        cells = {}
        rates = {}
        for mode in MODES:
            runs = results[mode][kind]
            merged = Result(sum(r.calls for r in runs), sum(r.seconds for r in runs),
                            [x for r in runs for x in r.latencies])
            rates[mode] = merged.rate
            failed = sum(r.failed for r in runs)
            cells[mode] = (f"{merged.rate:,.0f}/s, p50 {merged.quantile(0.5):.1f} ms, "
                           f"p99 {merged.quantile(0.99):.1f} ms"
                           + (f", {failed} UNAVAILABLE" if failed else ""))
        name = {"commit": "one-row commit, 1 connection (no authsvc)"}.get(kind, kind.capitalize())
        print(f"| {name} | {cells['async']} | {cells['sync']} | "
              f"{rates['sync'] / rates['async']:.2f} |")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.replication", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once")
    parser.add_argument("--rounds", type=int, default=2, help="of async then sync")
    parser.add_argument("--revoke-sessions", type=int, default=250,
                        help="sessions signed in per client for each Revoke measurement")
    return parser


if __name__ == "__main__":
    main()
