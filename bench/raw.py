"""The ceilings that are not an empty RPC: what argon2 and PostgreSQL can do
on their own, on the same cores and the same database, with no gRPC."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
import time
from dataclasses import dataclass

import argon2
import asyncpg

from authsvc.domain.accounts.passwords import PROFILES

TABLE = "bench_refresh"
ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    calls: int
    seconds: float
    cpu_s: float = 0.0  # this process's CPU time meanwhile, where counted

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


def argon2_verify(profile: str, threads: int, seconds: float) -> Rate:
    """``threads`` threads verifying one correct password in a loop (argon2-cffi
    releases the GIL, so they use as many cores); with the CPU time they took."""
    hasher = argon2.PasswordHasher.from_parameters(PROFILES[profile])
    stored = hasher.hash("correct horse battery staple")
    counts = [0] * threads
    cpu = time.process_time()
    start = time.monotonic()
    deadline = start + seconds

    def loop(i: int) -> None:
        while time.monotonic() < deadline:
            hasher.verify(stored, "correct horse battery staple")
            counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return Rate(sum(counts), time.monotonic() - start, time.process_time() - cpu)


async def prepare_table(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, token bytea NOT NULL,"
                           " uses int NOT NULL DEFAULT 0)")
        await conn.execute(f"INSERT INTO {TABLE} (id, token) SELECT i, ''::bytea"  # noqa: S608
                           f" FROM generate_series(1, {ROWS}) AS i")
    finally:
        await conn.close()


def transactions(url: str, processes: int, pool_size: int, concurrency: int,
                 seconds: float) -> Rate:
    """``processes`` processes (like the workers), each with its own pool, run
    ``concurrency`` loops in all of one short transaction: an UPDATE … RETURNING
    of a random row."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        share = [concurrency // processes + (i < concurrency % processes)
                 for i in range(processes)]
        start_at = time.time() + 2.0  # all processes start together
        counts = pool.starmap(_transactions_process,
                              [(url, pool_size, n, start_at, seconds) for n in share])
    return Rate(sum(counts), seconds)


def _transactions_process(url: str, pool_size: int, concurrency: int, start_at: float,
                          seconds: float) -> int:
    return asyncio.run(_transactions(url, pool_size, concurrency, start_at, seconds))


async def _transactions(url: str, pool_size: int, concurrency: int, start_at: float,
                        seconds: float) -> int:
    statement = (f"UPDATE {TABLE} SET token = $2, uses = uses + 1"  # noqa: S608
                 " WHERE id = $1 RETURNING uses")
    count = 0
    async with asyncpg.create_pool(url, min_size=pool_size, max_size=pool_size) as pool:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            nonlocal count
            rng = random.Random()  # noqa: S311 (picks rows, not secrets)
            while time.monotonic() < deadline:
                async with pool.acquire() as conn, conn.transaction():
                    await conn.fetchval(statement, rng.randint(1, ROWS), rng.randbytes(32))
                count += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return count
