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


DECOY = "decoy"  # the outbox kind of a settled row that stands in for a message


async def replace_and_send(conn: asyncpg.Connection, user_id: str | None, purpose: str,
                           code_hash: bytes, ttl: int, *, kind: str, channel: str,
                           recipient: str, payload: bytes) -> None:
    """The user's code for ``purpose`` is now this one (any earlier one is void), and
    the message that carries it is queued in the outbox: one statement, one round trip.

    ``user_id`` None (nobody to send a code to): the same statement writes no code and
    one outbox row of kind ``decoy`` that is already settled (``sent_at`` set, no
    payload, like a delivered row), which no sender ever claims and housekeeping prunes
    with the sent rows. So a request for an unknown identifier sends the same statement,
    with parameters of the same shape, as one for an existing account."""
    await conn.execute(
        "WITH code AS ("
        "  INSERT INTO account_codes (user_id, purpose, code_hash, created_at, expires_at)"
        "  SELECT $1, $2, $3, now(), now() + make_interval(secs => $4::float8)"
        "   WHERE $1::uuid IS NOT NULL"
        "  ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = excluded.code_hash,"
        "  created_at = excluded.created_at, expires_at = excluded.expires_at, failures = 0"
        "  RETURNING 1)"
        " INSERT INTO outbox (kind, channel, recipient, payload, sent_at)"
        " SELECT CASE WHEN issued THEN $5 ELSE $9 END, $6, $7,"
        "        CASE WHEN issued THEN $8::bytea END, CASE WHEN NOT issued THEN now() END"
        "   FROM (SELECT EXISTS (SELECT FROM code) AS issued) AS outcome",
        None if user_id is None else uuid.UUID(user_id), purpose, code_hash, float(ttl),
        kind, channel, recipient, payload, DECOY)


@dataclass(frozen=True, slots=True)
class SignedUp:
    """What a verify-mode sign-up wrote: the new user's id, or (taken) the owner's."""

    created: str | None
    owner: str | None


async def sign_up_and_send(conn: asyncpg.Connection, column: str, value: str, user_id: str,
                           password_hash: str, code_hash: bytes, ttl: int, *,
                           channel: str, verify_payload: bytes, taken_payload: bytes,
                           ) -> SignedUp:
    """A verify-mode sign-up in one statement, the same for a new and a taken identifier:
    insert the unverified user ``user_id`` unless ``value`` is taken; if inserted, its
    verification code (``code_hash``) and the ``verify`` message (``verify_payload``),
    else the owner's ``already_registered`` message (``taken_payload``). Either way one
    outbox row to ``value``. ``column`` is ``email`` or ``phone``."""
    if column not in ("email", "phone"):  # it goes into the statement's text
        raise ValueError(f"a sign-up is verified by email or phone, not {column!r}")
    row = await conn.fetchrow(
        "WITH new AS ("  # noqa: S608 (column is one of two names, never input)
        f"  INSERT INTO users (id, {column}, password_hash, created_at, updated_at,"
        "  verified_at) VALUES ($1, $2, $3, now(), now(), NULL)"
        "  ON CONFLICT DO NOTHING RETURNING id),"
        " code AS ("
        "  INSERT INTO account_codes (user_id, purpose, code_hash, created_at, expires_at)"
        "  SELECT id, 'verify', $4, now(), now() + make_interval(secs => $5::float8)"
        "    FROM new RETURNING user_id),"
        " message AS ("
        "  INSERT INTO outbox (kind, channel, recipient, payload)"
        "  SELECT CASE WHEN created THEN 'verify' ELSE 'already_registered' END, $6, $2,"
        "         CASE WHEN created THEN $7::bytea ELSE $8::bytea END"
        "    FROM (SELECT EXISTS (SELECT FROM code) AS created) AS outcome RETURNING 1)"
        " SELECT (SELECT user_id FROM code) AS created,"
        f"       (SELECT id FROM users WHERE {column} = $2) AS owner,"
        "        (SELECT count(*) FROM message) AS queued",
        uuid.UUID(user_id), value, password_hash, code_hash, float(ttl), channel,
        verify_payload, taken_payload)
    if row["queued"] != 1:  # never: exactly one message either way; roll it all back
        raise RuntimeError("a verify-mode sign-up queued no message")
    return SignedUp(None if row["created"] is None else str(row["created"]),
                    None if row["owner"] is None else str(row["owner"]))


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
