"""SQL for signing keys."""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from ..clock import to_datetime

# pg_advisory_xact_lock key for "creating the first signing key".
KEY_CREATION_LOCK_ID = 0x61757468_6B657973  # "authkeys"


@dataclass(frozen=True, slots=True)
class KeyRow:
    kid: str
    alg: str
    public_jwk: dict[str, str]
    private_key: bytes
    created_at: float
    activates_at: float
    retired_at: float | None
    publish_until: float | None


def _ts(value: object) -> float | None:
    return None if value is None else value.timestamp()  # type: ignore[attr-defined]


async def load(conn: asyncpg.Connection) -> list[KeyRow]:
    rows = await conn.fetch(
        "SELECT kid, alg, public_jwk, private_key, created_at, activates_at, retired_at,"
        " publish_until FROM signing_keys ORDER BY activates_at")
    return [KeyRow(kid=r["kid"], alg=r["alg"], public_jwk=json.loads(r["public_jwk"]),
                   private_key=bytes(r["private_key"]), created_at=r["created_at"].timestamp(),
                   activates_at=r["activates_at"].timestamp(), retired_at=_ts(r["retired_at"]),
                   publish_until=_ts(r["publish_until"])) for r in rows]


async def lock_for_creation(conn: asyncpg.Connection) -> None:
    """Serialise key creation across replicas until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", KEY_CREATION_LOCK_ID)


async def insert(conn: asyncpg.Connection, row: KeyRow) -> None:
    await conn.execute(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at,"
        " activates_at, retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        row.kid, row.alg, json.dumps(row.public_jwk), row.private_key,
        to_datetime(row.created_at), to_datetime(row.activates_at),
        None if row.retired_at is None else to_datetime(row.retired_at),
        None if row.publish_until is None else to_datetime(row.publish_until))


async def retire(conn: asyncpg.Connection, kid: str, now: float, publish_until: float) -> bool:
    result = await conn.execute(
        "UPDATE signing_keys SET retired_at = $2, publish_until = $3"
        " WHERE kid = $1 AND (retired_at IS NULL OR retired_at > $2)",
        kid, to_datetime(now), to_datetime(publish_until))
    return bool(result == "UPDATE 1")
