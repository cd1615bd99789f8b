"""SQL for sessions, refresh tokens and revocations.

A refresh is one statement (``refresh_session``, migration 0004): it takes the
session's row lock (so concurrent refreshes and revocations of one session
queue behind each other), decides by the database's clock and writes. Every
revocation NOTIFYs the revocation channel in its transaction, so listeners
hear it on commit. Every stored time is the database's ``now()``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from .database import REVOCATION_CHANNEL


class RefreshOutcome(StrEnum):
    """What ``refresh_session`` (migration 0004) decided; see its comment."""

    THROTTLED = "throttled"
    UNKNOWN = "unknown"
    ENDED = "ended"
    ROTATED = "rotated"
    REPEATED = "repeated"
    REUSED = "reused"


@dataclass(frozen=True, slots=True)
class Refreshed:
    """A refresh that succeeded: rotated, or repeated within the grace interval."""

    outcome: RefreshOutcome  # ROTATED or REPEATED
    user_id: str
    scopes: tuple[str, ...]
    counter: int  # the session's counter now: the successor's
    expires_in: float  # seconds until the session's absolute end
    amr: tuple[str, ...] = ("pwd",)
    auth_age: float = 0.0  # seconds since the sign-in, by the database's clock


@dataclass(frozen=True, slots=True)
class RefreshRefused:
    """A refresh that did not: throttled (``retry_after``), unknown, ended or reused."""

    outcome: RefreshOutcome
    retry_after: float = 0.0


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


def time_ordered_uuid(millis: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. New
    sessions' ids sort after older ones, so inserting one touches the right edge of
    the primary-key index instead of a random page of it: with tens of millions of
    sessions the index no longer has to fit in memory for sign-ins to stay fast."""
    if millis is None:
        millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | secrets.randbits(80)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # variant 10
    return uuid.UUID(int=value)


async def create(conn: asyncpg.Connection, *, user_id: str, scopes: tuple[str, ...],
                 ttl: int, client_addr: str | None, user_agent: str | None,
                 amr: Sequence[str] | None = None,
                 recorded: tuple[str, str | None] | None = None) -> str:
    """A new session, its times by the database's clock; its refresh counter is 0, its
    user authenticated now by ``amr`` (by default a password alone). ``recorded``: the
    (kind, reason) of the audit row that says so (``events.record``), written by the
    same statement."""
    session_id = time_ordered_uuid()
    insert = ("INSERT INTO sessions (id, user_id, scopes, expires_at, client_addr,"
              " user_agent, amr, auth_time)"
              " VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5, $6, $7, now())")
    args = [session_id, uuid.UUID(user_id), list(scopes), float(ttl), client_addr, user_agent,
            list(amr or ("pwd",))]
    if recorded is None:
        await conn.execute(insert, *args)
    else:
        await conn.execute(
            f"WITH session AS ({insert} RETURNING id, user_id)"  # noqa: S608 (constant text)
            " INSERT INTO auth_events (at, kind, reason, user_id, session_id, client_addr,"
            " user_agent) SELECT now(), $8, $9, user_id, id, $5, $6 FROM session",
            *args, *recorded)
    return str(session_id)


async def refresh(conn: asyncpg.Connection, session_id: str, presented: int, *,
                  grace: float, idle: float, throttle: str | None, audit_success: bool,
                  client_addr: str | None, user_agent: str | None,
                  ) -> Refreshed | RefreshRefused:
    """One refresh of ``session_id`` with the token of counter ``presented``, decided
    and written by ``refresh_session`` (0004; 0006 adds amr and auth_time) in one
    statement."""
    r = await conn.fetchrow(
        "SELECT outcome, user_id, scopes, counter, expires_in, retry_after, amr, auth_age"
        "  FROM refresh_session($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        uuid.UUID(session_id), presented, float(grace), float(idle), throttle, client_addr,
        user_agent, REVOCATION_CHANNEL, audit_success)
    outcome = RefreshOutcome(r["outcome"])
    if outcome not in (RefreshOutcome.ROTATED, RefreshOutcome.REPEATED):
        return RefreshRefused(outcome, retry_after=r["retry_after"] or 0.0)
    return Refreshed(outcome=outcome, user_id=str(r["user_id"]), scopes=tuple(r["scopes"] or ()),
                     counter=r["counter"], expires_in=r["expires_in"],
                     amr=tuple(r["amr"] or ("pwd",)), auth_age=r["auth_age"] or 0.0)


@dataclass(frozen=True, slots=True)
class ActiveRefresh:
    session_id: str
    user_id: str
    scopes: tuple[str, ...]
    expires_at: float  # the session's end: absolute or idle, whichever comes first


async def active_refresh(conn: asyncpg.Connection, session_id: str, presented: int, *,
                         idle: float) -> ActiveRefresh | None:
    """The session when ``presented`` is its current counter and a refresh with it would
    succeed now by the database's clock (``refresh_session``'s checks, nothing written);
    None otherwise."""
    r = await conn.fetchrow(
        "SELECT s.user_id, u.scopes,"
        "       LEAST(s.expires_at, s.last_used_at + make_interval(secs => $3)) AS ends_at"
        "  FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id = $1 AND s.refresh_counter = $2 AND s.revoked_at IS NULL"
        "   AND u.disabled_at IS NULL AND now() < s.expires_at"
        "   AND now() < s.last_used_at + make_interval(secs => $3)",
        uuid.UUID(session_id), presented, float(idle))
    if r is None:
        return None
    return ActiveRefresh(session_id=session_id, user_id=str(r["user_id"]),
                         scopes=tuple(r["scopes"]), expires_at=r["ends_at"].timestamp())


async def legacy_token(conn: asyncpg.Connection, token_hash: bytes) -> tuple[str, int] | None:
    """A refresh token issued before counters (0004), read from the old table, which is
    never written again: its session and the counter it stands for. The current token
    of its session stands for 0, its predecessor for -1 (within the grace interval it
    gets that token again), anything older for -2 (reuse)."""
    r = await conn.fetchrow(
        "SELECT t.session_id, CASE WHEN t.spent_at IS NULL THEN 0"
        "  WHEN (SELECT c.spent_at IS NULL FROM refresh_tokens c WHERE c.parent_id = t.id)"
        "  THEN -1 ELSE -2 END AS presented"
        "  FROM refresh_tokens t WHERE t.token_hash = $1", token_hash)
    return None if r is None else (str(r["session_id"]), int(r["presented"]))


async def revoke(conn: asyncpg.Connection, *, reason: str, session_ids: Sequence[str] = (),
                 user_id: str | None = None, client_addr: str | None = None,
                 user_agent: str | None = None) -> list[str]:
    """Revoke the given sessions and every session of ``user_id`` not yet revoked,
    in one statement (``revoke_sessions`` in 0004): each revoked session NOTIFYs the
    revocation channel and gets its ``session.revoked`` audit row. Returns the ids
    revoked now."""
    rows = await conn.fetch(
        "SELECT revoke_sessions($1::uuid[], $2, $3, $4, $5, $6) AS id",
        [uuid.UUID(s) for s in session_ids], None if user_id is None else uuid.UUID(user_id),
        reason, client_addr, user_agent, REVOCATION_CHANNEL)
    return [str(r["id"]) for r in rows]


async def user_of_session(conn: asyncpg.Connection, session_id: str) -> str | None:
    found = await conn.fetchval("SELECT user_id FROM sessions WHERE id = $1",
                                uuid.UUID(session_id))
    return None if found is None else str(found)


async def revoked_within(conn: asyncpg.Connection, window: float) -> dict[str, float]:
    """Sessions revoked within the last ``window`` seconds, each with how many of them
    are left, both by the database's clock."""
    rows = await conn.fetch(
        "SELECT id, extract(epoch FROM revoked_at + make_interval(secs => $1) - now())"
        "  AS keep FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)",
        float(window))
    return {str(r["id"]): float(r["keep"]) for r in rows}


async def is_revoked(conn: asyncpg.Connection, session_id: str) -> bool:
    """Whether the session was revoked; one that no longer exists was pruned long after
    it ended (see ``prune_ended``) and counts as revoked."""
    found = await conn.fetchval("SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $1",
                                uuid.UUID(session_id))
    return found is None or bool(found)


async def prune_ended(conn: asyncpg.Connection, *, after: float, batch: int) -> int:
    """Delete at most ``batch`` sessions revoked, or past their absolute lifetime, more
    than ``after`` seconds ago by the database's clock; how many. A session that ended
    by idling goes once its absolute lifetime has passed too: finding it sooner would
    need an index on its last use, which every refresh would then have to update (no
    more HOT updates). Legacy refresh-token rows go with their sessions (CASCADE)."""
    result = await conn.execute(
        "DELETE FROM sessions WHERE id IN ("
        " SELECT id FROM sessions WHERE revoked_at < now() - make_interval(secs => $1)"
        " UNION ALL SELECT id FROM sessions WHERE expires_at < now() - make_interval(secs => $1)"
        " LIMIT $2)", float(after), batch)
    return int(result.split()[-1])


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
