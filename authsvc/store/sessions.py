"""SQL for sessions, refresh tokens and revocations.

A refresh runs in one transaction: ``lock_session_of_token`` takes the
session's row lock first (so concurrent refreshes and revocations of one
session queue behind each other), then ``refresh_state`` reads the token's
state in a fresh snapshot, after the lock. Every revocation NOTIFYs the
revocation channel in its transaction, so listeners hear it on commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ..clock import to_datetime
from .database import REVOCATION_CHANNEL


@dataclass(frozen=True, slots=True)
class RefreshState:
    token_id: int
    session_id: str
    user_id: str
    scopes: tuple[str, ...]
    spent_at: float | None
    successor_unspent: bool | None  # None: no successor yet
    session_expires_at: float
    session_last_used_at: float
    session_revoked: bool
    user_disabled: bool


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    user_id: str
    created_at: float
    expires_at: float
    last_used_at: float
    revoked_at: float | None
    client_addr: str | None
    user_agent: str | None


async def create(conn: asyncpg.Connection, *, user_id: str, scopes: tuple[str, ...],
                 now: float, ttl: int, client_addr: str | None,
                 user_agent: str | None) -> str:
    session_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO sessions (id, user_id, scopes, created_at, expires_at, last_used_at,"
        " client_addr, user_agent) VALUES ($1, $2, $3, $4, $5, $4, $6, $7)",
        session_id, uuid.UUID(user_id), list(scopes), to_datetime(now),
        to_datetime(now + ttl), client_addr, user_agent)
    return str(session_id)


async def insert_refresh_token(conn: asyncpg.Connection, session_id: str, token_hash: bytes,
                               now: float, parent_id: int | None = None) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (session_id, token_hash, parent_id, created_at)"
        " VALUES ($1, $2, $3, $4)",
        uuid.UUID(session_id), token_hash, parent_id, to_datetime(now))


async def lock_session_of_token(conn: asyncpg.Connection, token_hash: bytes) -> bool:
    """Lock the session a refresh token belongs to; False when no such token."""
    found = await conn.fetchval(
        "SELECT s.id FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id"
        " WHERE t.token_hash = $1 FOR UPDATE OF s", token_hash)
    return found is not None


async def refresh_state(conn: asyncpg.Connection, token_hash: bytes) -> RefreshState | None:
    r = await conn.fetchrow(
        "SELECT t.id, t.session_id, t.spent_at, s.user_id, u.scopes, s.expires_at,"
        "       s.last_used_at, s.revoked_at, u.disabled_at,"
        "       (SELECT c.spent_at IS NULL FROM refresh_tokens c WHERE c.parent_id = t.id)"
        "         AS successor_unspent"
        "  FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
        "  JOIN users u ON u.id = s.user_id WHERE t.token_hash = $1", token_hash)
    if r is None:
        return None
    return RefreshState(
        token_id=r["id"], session_id=str(r["session_id"]), user_id=str(r["user_id"]),
        scopes=tuple(r["scopes"]),
        spent_at=None if r["spent_at"] is None else r["spent_at"].timestamp(),
        successor_unspent=r["successor_unspent"],
        session_expires_at=r["expires_at"].timestamp(),
        session_last_used_at=r["last_used_at"].timestamp(),
        session_revoked=r["revoked_at"] is not None, user_disabled=r["disabled_at"] is not None)


@dataclass(frozen=True, slots=True)
class ActiveRefresh:
    session_id: str
    user_id: str
    scopes: tuple[str, ...]
    expires_at: float  # the session's end: absolute or idle, whichever comes first


async def active_refresh_token(conn: asyncpg.Connection, token_hash: bytes, now: float,
                               idle_ttl: float) -> ActiveRefresh | None:
    """The session of an unspent refresh token whose session and user are live at
    ``now`` (the check Refresh makes, without spending it); None for any other."""
    r = await conn.fetchrow(
        "SELECT s.id, s.user_id, u.scopes,"
        "       LEAST(s.expires_at, s.last_used_at + make_interval(secs => $3)) AS ends_at"
        "  FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
        "  JOIN users u ON u.id = s.user_id"
        " WHERE t.token_hash = $1 AND t.spent_at IS NULL AND s.revoked_at IS NULL"
        "   AND u.disabled_at IS NULL"
        "   AND $2 < LEAST(s.expires_at, s.last_used_at + make_interval(secs => $3))",
        token_hash, to_datetime(now), float(idle_ttl))
    if r is None:
        return None
    return ActiveRefresh(session_id=str(r["id"]), user_id=str(r["user_id"]),
                         scopes=tuple(r["scopes"]), expires_at=r["ends_at"].timestamp())


async def spend(conn: asyncpg.Connection, token_id: int, now: float) -> bool:
    """Mark the token spent; False if it already was (the caller holds the lock)."""
    result = await conn.execute(
        "UPDATE refresh_tokens SET spent_at = $2 WHERE id = $1 AND spent_at IS NULL",
        token_id, to_datetime(now))
    return bool(result == "UPDATE 1")


async def touch(conn: asyncpg.Connection, session_id: str, now: float) -> None:
    await conn.execute("UPDATE sessions SET last_used_at = greatest(last_used_at, $2)"
                       " WHERE id = $1", uuid.UUID(session_id), to_datetime(now))


async def revoke(conn: asyncpg.Connection, *, now: float, reason: str,
                 session_ids: Sequence[str] = (), user_id: str | None = None,
                 client_addr: str | None = None, user_agent: str | None = None) -> list[str]:
    """Revoke the given sessions and every session of ``user_id`` not yet revoked,
    in one statement: each revoked session NOTIFYs the revocation channel and gets
    its ``session.revoked`` audit row. Returns the ids revoked now."""
    rows = await conn.fetch(
        "WITH revoked AS ("
        "  UPDATE sessions SET revoked_at = $2, revoke_reason = $3"
        "   WHERE (id = ANY($1::uuid[]) OR user_id = $4) AND revoked_at IS NULL"
        "  RETURNING id, user_id),"
        " audited AS ("
        "  INSERT INTO auth_events (at, kind, reason, user_id, session_id, client_addr,"
        "                           user_agent)"
        "  SELECT $2, 'session.revoked', $3, user_id, id, $5, $6 FROM revoked)"
        " SELECT id, pg_notify($7, id::text) FROM revoked",
        [uuid.UUID(s) for s in session_ids], to_datetime(now), reason,
        None if user_id is None else uuid.UUID(user_id), client_addr, user_agent,
        REVOCATION_CHANNEL)
    return [str(r["id"]) for r in rows]


async def session_of_token(conn: asyncpg.Connection, token_hash: bytes) -> str | None:
    found = await conn.fetchval(
        "SELECT session_id FROM refresh_tokens WHERE token_hash = $1", token_hash)
    return None if found is None else str(found)


async def user_of_session(conn: asyncpg.Connection, session_id: str) -> str | None:
    found = await conn.fetchval("SELECT user_id FROM sessions WHERE id = $1",
                                uuid.UUID(session_id))
    return None if found is None else str(found)


async def revoked_since(conn: asyncpg.Connection, since: float) -> dict[str, float]:
    """Sessions revoked at or after ``since``: id → revoked_at."""
    rows = await conn.fetch("SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1",
                            to_datetime(since))
    return {str(r["id"]): r["revoked_at"].timestamp() for r in rows}


async def revoked_at(conn: asyncpg.Connection, session_id: str) -> float | None:
    """When the session was revoked (None: it was not, or does not exist)."""
    found = await conn.fetchval("SELECT revoked_at FROM sessions WHERE id = $1",
                                uuid.UUID(session_id))
    return None if found is None else float(found.timestamp())


async def list_for_user(conn: asyncpg.Connection, user_id: str) -> list[SessionRow]:
    rows = await conn.fetch(
        "SELECT id, user_id, created_at, expires_at, last_used_at, revoked_at, client_addr,"
        " user_agent FROM sessions WHERE user_id = $1 ORDER BY created_at DESC",
        uuid.UUID(user_id))
    return [SessionRow(id=str(r["id"]), user_id=str(r["user_id"]),
                       created_at=r["created_at"].timestamp(),
                       expires_at=r["expires_at"].timestamp(),
                       last_used_at=r["last_used_at"].timestamp(),
                       revoked_at=None if r["revoked_at"] is None
                       else r["revoked_at"].timestamp(),
                       client_addr=r["client_addr"], user_agent=r["user_agent"])
            for r in rows]
