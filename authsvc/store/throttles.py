"""SQL for throttling. The tarpit arithmetic runs in one statement per key,
so concurrent failures on several replicas count exactly, and by the
database's clock (``now()``), so replicas whose clocks disagree block alike.
Waits come back as seconds left, worked out by that clock too."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from . import users
from .users import UserRow


@dataclass(frozen=True, slots=True)
class Tarpit:
    """``free`` failures, then a block of base·2^(n-free) seconds, at most ``cap``;
    failures older than ``window`` are forgotten."""

    free: int
    base: float
    cap: float
    window: float


async def blocked_for(conn: asyncpg.Connection, keys: list[str]) -> float | None:
    """Seconds left of the latest block among ``keys`` in force now; None: none is."""
    found = await conn.fetchval(
        "SELECT extract(epoch FROM max(blocked_until) - now()) FROM throttles"
        " WHERE key = ANY($1) AND blocked_until > now()", keys)
    return None if found is None else float(found)


async def record_failure(conn: asyncpg.Connection, key: str, tarpit: Tarpit) -> None:
    await conn.execute(
        """
        INSERT INTO throttles AS t (key, failures, last_failure_at, blocked_until)
        VALUES ($1, 1, now(),
                CASE WHEN 1 > $2::int THEN now() + make_interval(secs => $3::float8) END)
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE
                WHEN t.last_failure_at < now() - make_interval(secs => $5::float8) THEN 1
                ELSE t.failures + 1 END,
            last_failure_at = now(),
            blocked_until = CASE
                WHEN t.last_failure_at < now() - make_interval(secs => $5::float8)
                    THEN excluded.blocked_until
                WHEN t.failures + 1 > $2::int THEN now() + make_interval(
                    secs => least($4::float8, $3::float8 * power(2, t.failures - $2::int)))
                ELSE t.blocked_until END
        """,
        key, tarpit.free, float(tarpit.base), float(tarpit.cap), float(tarpit.window))


async def reserve(conn: asyncpg.Connection, checked: list[str],
                  charged: list[tuple[str, Tarpit]]) -> tuple[float, int] | None:
    """Take one attempt's slot on every ``charged`` key, atomically (``throttle_reserve``
    in 0003): None when taken (counted as a failure), else the seconds left of the
    latest block in force among ``checked`` and how many attempts it has refused
    (nothing counted)."""
    found = await conn.fetchrow(
        "SELECT extract(epoch FROM blocked - now()) AS wait, refused"
        "  FROM throttle_reserve($1::text[], $2::text[], $3::int[],"
        " $4::float8[], $5::float8[], $6::float8[], now())",
        checked, [k for k, _ in charged], [t.free for _, t in charged],
        [float(t.base) for _, t in charged], [float(t.cap) for _, t in charged],
        [float(t.window) for _, t in charged])
    if found is None or found["wait"] is None:
        return None
    return float(found["wait"]), int(found["refused"])


async def reserve_and_find(conn: asyncpg.Connection, checked: list[str],
                           charged: list[tuple[str, Tarpit]], exempt: tuple[str, str] | None,
                           kind: str, value: str,
                           ) -> tuple[tuple[float, int] | None, UserRow | None]:
    """A sign-in's first statement, one round trip: ``reserve`` (with ``exempt``, a
    (trust key, checked key) pair: while the trust key is trusted, that key is not
    checked, though still charged), then, when the slot was taken, the user named by
    ``value`` in the ``kind`` column (``users.find``). One statement commits on its own,
    so the reservation's row locks last only as long as the statement."""
    columns, column = users.select_by(kind)
    trust_key, exempt_key = exempt if exempt is not None else (None, None)
    found = await conn.fetchrow(
        "SELECT extract(epoch FROM r.blocked - now()) AS wait, r.refused, u.*"  # noqa: S608 (the column is never input)
        "  FROM throttle_reserve("
        "         CASE WHEN EXISTS (SELECT FROM trusted_clients"
        "                            WHERE key = $7::text AND until > now())"
        "              THEN array_remove($1::text[], $8::text) ELSE $1::text[] END,"
        "         $2::text[], $3::int[], $4::float8[], $5::float8[], $6::float8[], now()) r"
        f"  LEFT JOIN LATERAL (SELECT {columns} FROM users WHERE {column} = $9) u"
        "    ON r.blocked IS NULL",
        checked, [k for k, _ in charged], [t.free for _, t in charged],
        [float(t.base) for _, t in charged], [float(t.cap) for _, t in charged],
        [float(t.window) for _, t in charged], trust_key, exempt_key, value)
    if found["wait"] is not None:
        return (float(found["wait"]), int(found["refused"])), None
    return None, users.row_of(found if found["id"] is not None else None)


async def release(conn: asyncpg.Connection, released: list[tuple[str, Tarpit]],
                  cleared: list[str], trusted: tuple[str, float] | None = None) -> None:
    """Give back the slots ``reserve`` took (``throttle_release`` in 0003): one failure
    fewer on each released key, and no block unless the failures left still exceed
    its free ones; the cleared keys start afresh. Locks in the order reserve does.
    ``trusted``: a (key, ttl) to ``trust`` in the same statement (after the release)."""
    if trusted is None:
        await conn.execute(
            "SELECT throttle_release($1::text[], $2::int[], $3::text[])",
            [k for k, _ in released], [t.free for _, t in released], cleared)
        return
    # PostgreSQL runs an unreferenced data-modifying WITH after the main query, so the
    # release's throttle rows are locked before the trusted row, as when these were two
    # statements; and every sign-in runs this same statement, so none takes them in
    # another order (nothing else locks a trusted row but forget_expired, which skips).
    await conn.execute(
        f"WITH trusted AS ({_TRUST.format(key=4, ttl=5)})"
        " SELECT throttle_release($1::text[], $2::int[], $3::text[])",
        [k for k, _ in released], [t.free for _, t in released], cleared, trusted[0],
        float(trusted[1]))


# Trust a key for a ttl in seconds; ``key`` and ``ttl`` are the parameters' numbers.
_TRUST = ("INSERT INTO trusted_clients (key, until)"
          " VALUES (${key}, now() + make_interval(secs => ${ttl}))"
          " ON CONFLICT (key) DO UPDATE SET until = excluded.until")


async def trust(conn: asyncpg.Connection, key: str, ttl: float) -> None:
    await conn.execute(_TRUST.format(key=1, ttl=2), key, float(ttl))


async def is_trusted(conn: asyncpg.Connection, key: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM trusted_clients WHERE key = $1 AND until > now()", key))


async def forget_expired(conn: asyncpg.Connection, window: float, batch: int) -> int:
    """Drop at most ``batch`` rows of each table that no longer affect anything; how
    many in all. Rows a sign-in holds are skipped (next pass), never waited for: a
    batch locks rows in no particular order, and waiting there could deadlock with
    a reservation."""
    throttles = await conn.execute(
        "DELETE FROM throttles WHERE key IN (SELECT key FROM throttles"
        " WHERE last_failure_at < now() - make_interval(secs => $1::float8)"
        " AND (blocked_until IS NULL OR blocked_until < now()) LIMIT $2 FOR UPDATE SKIP LOCKED)",
        float(window), batch)
    trusted = await conn.execute(
        "DELETE FROM trusted_clients WHERE key IN (SELECT key FROM trusted_clients"
        " WHERE until < now() LIMIT $1 FOR UPDATE SKIP LOCKED)", batch)
    return int(throttles.split()[-1]) + int(trusted.split()[-1])
