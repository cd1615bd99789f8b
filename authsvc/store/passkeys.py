"""SQL for passkeys (WebAuthn credentials) and their ceremonies (migration 0006).

A ceremony is taken (spent) by one conditional UPDATE, so a challenge answers
once; a credential's sign counter moves only forwards, decided under its row
lock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Ceremony:
    purpose: str
    user_id: str | None
    mfa_hash: bytes | None
    challenge: bytes


@dataclass(frozen=True, slots=True)
class Credential:
    id: bytes
    user_id: str
    public_key: bytes
    sign_count: int
    synced: bool
    name: str
    created_at: float
    last_used_at: float | None


_COLUMNS = "id, user_id, public_key, sign_count, synced, name, created_at, last_used_at"


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(bytes(row["id"]), str(row["user_id"]), bytes(row["public_key"]),
                      row["sign_count"], row["synced"], row["name"],
                      row["created_at"].timestamp(),
                      None if row["last_used_at"] is None else row["last_used_at"].timestamp())


async def open_ceremony(conn: asyncpg.Connection, id_hash: bytes, purpose: str,
                        user_id: str | None, mfa_hash: bytes | None, challenge: bytes,
                        ttl: float) -> None:
    await conn.execute(
        "INSERT INTO webauthn_ceremonies (id_hash, purpose, user_id, mfa_hash, challenge,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
        id_hash, purpose, None if user_id is None else uuid.UUID(user_id), mfa_hash,
        challenge, float(ttl))


async def take_ceremony(conn: asyncpg.Connection, id_hash: bytes, purpose: str,
                        ) -> Ceremony | None:
    """Spend the live ceremony of ``purpose``; None when there is none (unknown, spent,
    expired by the database's clock, or for something else)."""
    row = await conn.fetchrow(
        "UPDATE webauthn_ceremonies SET spent_at = now() WHERE id_hash = $1 AND purpose = $2"
        " AND spent_at IS NULL AND expires_at > now()"
        " RETURNING purpose, user_id, mfa_hash, challenge", id_hash, purpose)
    if row is None:
        return None
    return Ceremony(row["purpose"], None if row["user_id"] is None else str(row["user_id"]),
                    None if row["mfa_hash"] is None else bytes(row["mfa_hash"]),
                    bytes(row["challenge"]))


async def spend_signed_ceremony(conn: asyncpg.Connection, id_hash: bytes, challenge: bytes,
                                expires_at: float) -> bool:
    """Record a passwordless ceremony that lived only in its signed id as spent; False
    when it was spent before or has expired by the database's clock."""
    return bool(await conn.fetchval(
        "INSERT INTO webauthn_ceremonies (id_hash, purpose, challenge, expires_at, spent_at)"
        " SELECT $1, 'sign_in', $2, to_timestamp($3), now() WHERE to_timestamp($3) > now()"
        " ON CONFLICT (id_hash) DO NOTHING RETURNING true", id_hash, challenge, expires_at))


async def insert(conn: asyncpg.Connection, credential_id: bytes, user_id: str,
                 public_key: bytes, sign_count: int, synced: bool, name: str) -> bool:
    """False when the credential id is registered already."""
    try:
        await conn.execute(
            "INSERT INTO webauthn_credentials (id, user_id, public_key, sign_count, synced,"
            " name) VALUES ($1, $2, $3, $4, $5, $6)",
            credential_id, uuid.UUID(user_id), public_key, sign_count, synced, name)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def of_user(conn: asyncpg.Connection, user_id: str) -> list[Credential]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM webauthn_credentials"  # noqa: S608
                            " WHERE user_id = $1 ORDER BY created_at", uuid.UUID(user_id))
    return [_credential(r) for r in rows]


async def lock(conn: asyncpg.Connection, credential_id: bytes) -> Credential | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM webauthn_credentials"  # noqa: S608
                              " WHERE id = $1 FOR UPDATE", credential_id)
    return None if row is None else _credential(row)


async def used(conn: asyncpg.Connection, credential_id: bytes, sign_count: int,
               synced: bool) -> None:
    await conn.execute(
        "UPDATE webauthn_credentials SET sign_count = $2, synced = $3, last_used_at = now()"
        " WHERE id = $1", credential_id, sign_count, synced)


async def remove(conn: asyncpg.Connection, user_id: str, credential_id: bytes) -> bool:
    result = await conn.execute(
        "DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2",
        credential_id, uuid.UUID(user_id))
    return bool(result != "DELETE 0")


async def remove_all(conn: asyncpg.Connection, user_id: str) -> int:
    result = await conn.execute("DELETE FROM webauthn_credentials WHERE user_id = $1",
                                uuid.UUID(user_id))
    return int(result.split()[-1])



