"""SQL for one-time codes (verification and password reset).

One live code per user and purpose; a new one replaces the old. Expiry is
judged by the database's clock (``now()`` in the statement), never a
replica's. A try locks the code's row, so concurrent tries of one code are
counted one after the other and a code is spent at most once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class CodeRow:
    code_hash: bytes
    expired: bool
    failures: int


async def replace_and_send(conn: asyncpg.Connection, user_id: str, purpose: str,
                           code_hash: bytes, ttl: int, *, kind: str, channel: str,
                           recipient: str, payload: bytes) -> None:
    """The user's code for ``purpose`` is now this one (any earlier one is void), and
    the message that carries it is queued in the outbox: one statement, one round trip,
    so a request for an existing account costs about what one for an unknown
    identifier does."""
    await conn.execute(
        "WITH code AS ("
        "  INSERT INTO account_codes (user_id, purpose, code_hash, created_at, expires_at)"
        "  VALUES ($1, $2, $3, now(), now() + make_interval(secs => $4::float8))"
        "  ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = excluded.code_hash,"
        "  created_at = excluded.created_at, expires_at = excluded.expires_at, failures = 0"
        "  RETURNING 1)"
        " INSERT INTO outbox (kind, channel, recipient, payload)"
        " SELECT $5, $6, $7, $8 FROM code",
        uuid.UUID(user_id), purpose, code_hash, float(ttl), kind, channel, recipient, payload)


async def lock(conn: asyncpg.Connection, user_id: str, purpose: str) -> CodeRow | None:
    """The user's live code for ``purpose``, its row locked until the transaction ends."""
    row = await conn.fetchrow(
        "SELECT code_hash, expires_at <= now() AS expired, failures FROM account_codes"
        " WHERE user_id = $1 AND purpose = $2 FOR UPDATE", uuid.UUID(user_id), purpose)
    if row is None:
        return None
    return CodeRow(bytes(row["code_hash"]), row["expired"], row["failures"])


async def count_failure(conn: asyncpg.Connection, user_id: str, purpose: str) -> None:
    await conn.execute(
        "UPDATE account_codes SET failures = failures + 1 WHERE user_id = $1 AND purpose = $2",
        uuid.UUID(user_id), purpose)


async def spend(conn: asyncpg.Connection, user_id: str, purpose: str) -> None:
    await conn.execute("DELETE FROM account_codes WHERE user_id = $1 AND purpose = $2",
                       uuid.UUID(user_id), purpose)


async def forget_expired(conn: asyncpg.Connection, batch: int = 1000) -> int:
    """Delete at most ``batch`` codes that expired (by the database's clock); how many."""
    result = await conn.execute(
        "DELETE FROM account_codes WHERE ctid IN (SELECT ctid FROM account_codes"
        " WHERE expires_at < now() LIMIT $1)", batch)
    return int(result.split()[-1])
