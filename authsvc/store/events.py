"""SQL for the audit log (auth_events). Never a password, token or hash."""

from __future__ import annotations

import uuid

import asyncpg

from ..clock import to_datetime


async def record(conn: asyncpg.Connection, kind: str, now: float, *,
                 reason: str | None = None, user_id: str | None = None,
                 session_id: str | None = None, client_addr: str | None = None,
                 user_agent: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO auth_events (at, kind, reason, user_id, session_id, client_addr,"
        " user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        to_datetime(now), kind, reason, _uuid(user_id), _uuid(session_id),
        client_addr, user_agent)


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)
