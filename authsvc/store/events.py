"""SQL for the audit log (auth_events). Never a password, token or hash."""

from __future__ import annotations

import uuid

import asyncpg

from ..clock import to_datetime

# Every kind of event authsvc writes (the audit vocabulary; `authsvc events
# --kind` takes one of these or a prefix such as "signin").
KINDS = (
    "signin.success", "signin.failure", "signin.throttled", "signin.mfa_required",
    "refresh.success", "refresh.failure", "refresh.reuse_detected",
    "session.revoked",
    "user.created", "user.disabled", "user.password_changed", "user.scopes_changed",
    "key.created", "key.rotated", "key.retired",
    "signup.taken", "verification.requested", "verification.succeeded", "verification.failed",
    "password.change_failed", "password.reset_requested", "password.reset_failed",
    "factor.totp_enrolled", "factor.totp_enabled", "factor.totp_removed",
    "factor.code_failure", "factor.recovery_code_used", "factor.recovery_codes_regenerated",
    "factor.reset", "factor.passkey_registered", "factor.passkey_removed",
    "factor.passkey_clone_suspected",
    "identity.linked", "identity.unlinked", "federation.refused",
)


async def record(conn: asyncpg.Connection, kind: str, *,
                 reason: str | None = None, user_id: str | None = None,
                 session_id: str | None = None, client_addr: str | None = None,
                 user_agent: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO auth_events (at, kind, reason, user_id, session_id, client_addr,"
        " user_agent) VALUES (now(), $1, $2, $3, $4, $5, $6)",
        kind, reason, _uuid(user_id), _uuid(session_id), client_addr, user_agent)


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


async def search(conn: asyncpg.Connection, *, user_id: str | None, since: float | None,
                 kind: str | None, limit: int) -> list[dict[str, object]]:
    """The newest events first, filtered; ``kind`` matches a prefix (``signin`` finds
    ``signin.success`` and ``signin.failure``)."""
    rows = await conn.fetch(
        "SELECT id, at, kind, reason, user_id, session_id, client_addr, user_agent"
        "  FROM auth_events"
        " WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::timestamptz IS NULL OR at >= $2)"
        "   AND ($3::text IS NULL OR kind = $3 OR kind LIKE $3 || '.%')"
        " ORDER BY at DESC, id DESC LIMIT $4",
        _uuid(user_id), None if since is None else to_datetime(since), kind, limit)
    return [{"id": r["id"], "at": r["at"].isoformat(), "kind": r["kind"], "reason": r["reason"],
             "user_id": None if r["user_id"] is None else str(r["user_id"]),
             "session_id": None if r["session_id"] is None else str(r["session_id"]),
             "client_addr": r["client_addr"], "user_agent": r["user_agent"]} for r in rows]


async def prune(conn: asyncpg.Connection, older_than: float, batch: int) -> int:
    """Delete at most ``batch`` of the oldest events more than ``older_than`` seconds
    old by the database's clock; how many. Small batches keep each statement's locks
    short while workers write."""
    result = await conn.execute(
        "DELETE FROM auth_events WHERE id IN (SELECT id FROM auth_events"
        " WHERE at < now() - make_interval(secs => $1) ORDER BY at LIMIT $2)",
        float(older_than), batch)
    return int(result.split()[-1])
