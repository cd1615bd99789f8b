"""SQL for throttling. The tarpit arithmetic runs in one statement per key,
so concurrent failures on several replicas count exactly."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ..clock import to_datetime


@dataclass(frozen=True, slots=True)
class Tarpit:
    """``free`` failures, then a block of base·2^(n-free) seconds, at most ``cap``;
    failures older than ``window`` are forgotten."""

    free: int
    base: float
    cap: float
    window: float


async def blocked_until(conn: asyncpg.Connection, keys: list[str], now: float) -> float | None:
    """The latest block among ``keys`` still in force at ``now``."""
    found = await conn.fetchval(
        "SELECT max(blocked_until) FROM throttles WHERE key = ANY($1) AND blocked_until > $2",
        keys, to_datetime(now))
    return None if found is None else float(found.timestamp())


async def record_failure(conn: asyncpg.Connection, key: str, tarpit: Tarpit,
                         now: float) -> None:
    await conn.execute(
        """
        INSERT INTO throttles AS t (key, failures, last_failure_at, blocked_until)
        VALUES ($1, 1, $2::timestamptz,
                CASE WHEN 1 > $3::int THEN $2::timestamptz + make_interval(secs => $4::float8)
                END)
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE
                WHEN t.last_failure_at < $2::timestamptz - make_interval(secs => $6::float8)
                    THEN 1
                ELSE t.failures + 1 END,
            last_failure_at = $2::timestamptz,
            blocked_until = CASE
                WHEN t.last_failure_at < $2::timestamptz - make_interval(secs => $6::float8)
                    THEN excluded.blocked_until
                WHEN t.failures + 1 > $3::int THEN $2::timestamptz + make_interval(
                    secs => least($5::float8, $4::float8 * power(2, t.failures - $3::int)))
                ELSE t.blocked_until END
        """,
        key, to_datetime(now), tarpit.free, float(tarpit.base), float(tarpit.cap),
        float(tarpit.window))


async def reserve(conn: asyncpg.Connection, checked: list[str],
                  charged: list[tuple[str, Tarpit]], now: float) -> tuple[float, int] | None:
    """Take one attempt's slot on every ``charged`` key, atomically (``throttle_reserve``
    in 0003): None when taken (counted as a failure), else the latest block in force
    among ``checked`` and how many attempts it has refused (nothing counted)."""
    found = await conn.fetchrow(
        "SELECT blocked, refused FROM throttle_reserve($1::text[], $2::text[], $3::int[],"
        " $4::float8[], $5::float8[], $6::float8[], $7)",
        checked, [k for k, _ in charged], [t.free for _, t in charged],
        [float(t.base) for _, t in charged], [float(t.cap) for _, t in charged],
        [float(t.window) for _, t in charged], to_datetime(now))
    if found is None or found["blocked"] is None:
        return None
    return float(found["blocked"].timestamp()), int(found["refused"])


async def reserve_now(conn: asyncpg.Connection, checked: list[str],
                      charged: list[tuple[str, Tarpit]]) -> tuple[float, int] | None:
    """``reserve`` judged by the database's clock (``now()``): None when the slot is
    taken, else how many seconds the block in force has left and its refusals."""
    found = await conn.fetchrow(
        "SELECT extract(epoch FROM blocked - now())::float8 AS wait, refused"
        "  FROM throttle_reserve($1::text[], $2::text[], $3::int[], $4::float8[],"
        "                        $5::float8[], $6::float8[], now())",
        checked, [k for k, _ in charged], [t.free for _, t in charged],
        [float(t.base) for _, t in charged], [float(t.cap) for _, t in charged],
        [float(t.window) for _, t in charged])
    if found is None or found["wait"] is None:
        return None
    return max(0.0, float(found["wait"])), int(found["refused"])


async def release(conn: asyncpg.Connection, released: list[tuple[str, Tarpit]],
                  cleared: list[str]) -> None:
    """Give back the slots ``reserve`` took (``throttle_release`` in 0003): one failure
    fewer on each released key, and no block unless the failures left still exceed
    its free ones; the cleared keys start afresh. Locks in the order reserve does."""
    await conn.execute(
        "SELECT throttle_release($1::text[], $2::int[], $3::text[])",
        [k for k, _ in released], [t.free for _, t in released], cleared)


async def trust(conn: asyncpg.Connection, key: str, until: float) -> None:
    await conn.execute(
        "INSERT INTO trusted_clients (key, until) VALUES ($1, $2)"
        " ON CONFLICT (key) DO UPDATE SET until = excluded.until", key, to_datetime(until))


async def is_trusted(conn: asyncpg.Connection, key: str, now: float) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM trusted_clients WHERE key = $1 AND until > $2",
        key, to_datetime(now)))


async def forget_expired(conn: asyncpg.Connection, now: float, window: float) -> None:
    """Drop rows that no longer affect anything."""
    moment = to_datetime(now)
    await conn.execute(
        "DELETE FROM throttles WHERE last_failure_at < $1::timestamptz"
        " - make_interval(secs => $2::float8)"
        " AND (blocked_until IS NULL OR blocked_until < $1::timestamptz)", moment, float(window))
    await conn.execute("DELETE FROM trusted_clients WHERE until < $1::timestamptz", moment)
